"""A group portal's name, topic and avatar changed on Matrix become the group's Info (name,
description, picture; docs/groups-v2.md §7.7), made by the acting identity
(:mod:`bridge.core.group.admin_acting`) for a room admin.

A refused change is put back as the group has it (the portal record follows the group's Info,
:mod:`bridge.core.group.portals`), and the sender is told why. A change made is written into
the portal record at once, so that the group's Info, when the bridge reads it back, is not sent
to the room a second time. The bridge's own state events never reach here (the router drops
the bot's and the ghosts' events), so nothing loops.

A name or description longer than Session allows (docs/groups-v2.md §2.1: 100 and 2000 bytes of
UTF-8) is refused and put back, with the limit, as the Session apps refuse it ("Please enter a
shorter group name") rather than cut it as libsession's setter would.
"""

from __future__ import annotations

import dataclasses
import logging

from mautrix.appservice import IntentAPI
from mautrix.errors import IntentError, MatrixRequestError
from mautrix.types import (
    EventType,
    RoomAvatarStateEventContent,
    RoomID,
    RoomNameStateEventContent,
    RoomTopicStateEventContent,
    StateEvent,
)

from bridge.core.group.admin_acting import ActingAdmins, AdminRefused
from bridge.core.group.portals import group_topic, picture_fingerprint
from bridge.core.topic_counts import base_topic
from bridge.db.records import PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.reads import MediaDownload
from bridge.session.groups.info import DESCRIPTION_MAX, NAME_MAX, Info

log = logging.getLogger("bridge.core.group.admin_info")

__all__ = ["GroupInfoFromMatrix", "description_of", "too_long"]

INFO_TYPES = (EventType.ROOM_NAME, EventType.ROOM_TOPIC, EventType.ROOM_AVATAR)
TOO_LONG = (
    "A Session group's {what} can be at most {limit} bytes long (this one has {size}); "
    "please enter a shorter {what}. {kept}"
)


def too_long(what: str, text: str, kept: str = "") -> str | None:
    """Why ``text`` cannot be the group's ``what`` ("name" or "description"), if it is over
    Session's limit (docs/groups-v2.md §2.1); ``kept`` ends the sentence."""
    limit = NAME_MAX if what == "name" else DESCRIPTION_MAX
    size = len(text.encode())
    if size <= limit:
        return None
    return TOO_LONG.format(what=what, limit=limit, size=size, kept=kept).strip()


def description_of(topic: str, info: Info | None) -> str:
    """The group description a room topic stands for: the topic without the
    disappearing-messages line the bridge appends to it (:func:`group_topic`) and without the
    migration counts line (:func:`base_topic`), which come last."""
    topic = base_topic(topic)
    if info is None or not info.disappearing_timer:
        return topic.strip()
    suffix = group_topic(dataclasses.replace(info, description=""))
    return topic.strip().removesuffix(suffix).strip()


class GroupInfoFromMatrix:
    """Room name, topic and avatar → group Info (see the module docstring)."""

    def __init__(
        self,
        *,
        acting: ActingAdmins,
        portals: PortalRepo,
        bot: IntentAPI,
        download: MediaDownload,
    ) -> None:
        self._acting = acting
        self._portals = portals
        self._bot = bot
        self._download = download

    async def on_state(self, portal: PortalRecord, event: StateEvent) -> bool:
        """True if ``event`` was a name, topic or avatar change (mirrored or refused)."""
        content = event.content
        try:
            if isinstance(content, RoomNameStateEventContent):
                await self._name(portal, str(event.sender), (content.name or "").strip())
            elif isinstance(content, RoomTopicStateEventContent):
                await self._topic(portal, str(event.sender), content.topic or "")
            elif isinstance(content, RoomAvatarStateEventContent):
                await self._avatar(portal, str(event.sender), str(content.url or ""))
            else:
                return False
        except AdminRefused:
            await self.revert(portal, event.type)
            raise
        return True

    async def _name(self, portal: PortalRecord, sender: str, name: str) -> None:
        if name == (portal.name or ""):
            return
        if not name:
            raise AdminRefused("A Session group needs a name; the room keeps the group's name.")
        refusal = too_long("name", name, "The room keeps the group's name.")
        if refusal is not None:
            raise AdminRefused(refusal)
        await self._acting.run(portal, sender, "rename the group", lambda a: a.set_name(name))
        await self._portals.update(dataclasses.replace(portal, name=name))
        log.info("Group %s renamed from Matrix", portal.session_key[:12])

    async def _topic(self, portal: PortalRecord, sender: str, topic: str) -> None:
        if topic == (portal.topic or ""):
            return
        view = self._acting.view(portal.session_key)
        description = description_of(topic, None if view is None else view.info)
        refusal = too_long("description", description, "The room keeps the group's topic.")
        if refusal is not None:
            raise AdminRefused(refusal)
        await self._acting.run(
            portal,
            sender,
            "change the group's description",
            lambda a: a.set_description(description),
        )
        # The room shows what the sender wrote; the bridge adds the timer line when it reads
        # the Info back, if the group has one (its topic then differs from this).
        await self._portals.update(dataclasses.replace(portal, topic=topic))

    async def _avatar(self, portal: PortalRecord, sender: str, mxc: str) -> None:
        if mxc == (portal.avatar_mxc or ""):
            return
        image = await self._download(mxc) if mxc else None
        acting, _ = await self._acting.run(
            portal, sender, "change the group's picture", lambda a: a.set_picture(image)
        )
        picture = acting.admin.info.picture
        changed = dataclasses.replace(
            portal,
            avatar_mxc=mxc or None,
            avatar_hash=picture_fingerprint(picture) if picture is not None else None,
        )
        await self._portals.update(changed)

    async def revert(self, portal: PortalRecord, event_type: EventType) -> None:
        """Put the room's name, topic or avatar back as the group has it."""
        room = RoomID(str(portal.mxid))
        try:
            if event_type == EventType.ROOM_NAME:
                await self._bot.set_room_name(room, portal.name or "")
            elif event_type == EventType.ROOM_TOPIC:
                topic = RoomTopicStateEventContent(topic=portal.topic or "")
                await self._bot.send_state_event(room, EventType.ROOM_TOPIC, topic)
            elif event_type == EventType.ROOM_AVATAR:
                avatar = RoomAvatarStateEventContent()
                if portal.avatar_mxc:
                    avatar = RoomAvatarStateEventContent(url=portal.avatar_mxc)  # type: ignore[arg-type]
                await self._bot.send_state_event(room, EventType.ROOM_AVATAR, avatar)
        except (IntentError, MatrixRequestError):
            log.exception("Could not put back %s in %s", event_type, portal.mxid)
