"""Group portal rooms: created for a group (``session_key`` = the group id, ``03…``), with the
group's name, and kept in step with its Info (docs/architecture.md §3.3, §4).

A room is created by the bot, invite-only, with the bridge-info state naming the group; the
Matrix users to invite are invited at creation. Info name, description and picture become
the room's name, topic and avatar whenever they change; the topic ends with the group's
disappearing-messages setting when it is on, as a direct chat's topic shows its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable

from mautrix.appservice import IntentAPI
from mautrix.types import (
    EventType,
    RoomAvatarStateEventContent,
    RoomID,
    RoomTopicStateEventContent,
)

from bridge.core.convert.media import image_mime_type
from bridge.core.convert.text_to_matrix import disappearing_notice_text
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.rooms import Channel
from bridge.session.avatars import decrypt_avatar_from_url
from bridge.session.errors import SessionError
from bridge.session.groups.info import Info, Picture
from bridge.session.messages import ExpiryMode

log = logging.getLogger("bridge.core.group.portals")

Download = Callable[[str], Awaitable[bytes]]  # a Session file by URL (the allowed servers)

__all__ = ["GroupPortals", "group_channel", "group_topic", "picture_fingerprint"]


def group_channel(group_id: str, name: str) -> Channel:
    """The bridge-info channel of a group."""
    return Channel(id=group_id, displayname=name or group_id[:12])


def group_topic(info: Info) -> str:
    """The room topic of a group: its description, then its disappearing setting when on
    (Info ``E``, delete after send; docs/groups-v2.md §2.1)."""
    timer = info.disappearing_timer or 0
    if timer <= 0:
        return info.description
    setting = disappearing_notice_text(ExpiryMode.DELETE_AFTER_SEND, timer)
    return f"{info.description}\n\n{setting}" if info.description else setting


def picture_fingerprint(picture: Picture) -> str:
    """What a portal remembers (``avatar_hash``) of the group picture its room shows."""
    return hashlib.sha256(picture.url.encode() + picture.key).hexdigest()[:32]


class GroupPortals:
    """Finds, creates and renames the rooms of group portals."""

    def __init__(
        self,
        *,
        bot: IntentAPI,
        rooms: PortalRooms,
        portals: PortalRepo,
        download: Download,
        public: bool = False,
    ) -> None:
        self._bot = bot
        self._download = download
        self._rooms = rooms
        self._portals = portals
        self._public = public

    async def existing(self, group_id: str) -> PortalRecord | None:
        """The bridged portal of ``group_id`` (with a room, not unbridged), if any."""
        portal = await self._portals.get_by_key(PortalKind.GROUP, group_id)
        if portal is None or portal.mxid is None or portal.unbridged_at is not None:
            return None
        return portal

    async def ensure(
        self, group_id: str, name: str, invitees: tuple[str, ...] = (), *, public: bool = False
    ) -> tuple[PortalRecord, bool]:
        """The portal of ``group_id``, its room created (with ``invitees``) if it has none;
        the flag says whether it was created now. ``public``: a room anyone may join when
        the config allows it (``groups.public_portals``), else invite-only."""
        portal = await self.existing(group_id)
        if portal is not None:
            return portal, False
        created = await self._rooms.create(
            PortalKind.GROUP,
            group_id,
            group_channel(group_id, name),
            invitees=invitees,
            public=public and self._public,
        )
        log.info("Created the group portal %s for %s", created.mxid, group_id[:12])
        return created, True

    async def follow_info(
        self, portal: PortalRecord, info: Info, *, force: bool = False
    ) -> PortalRecord:
        """Room name, topic and avatar from the group's Info, sent only when they changed
        (``force``: sent again anyway, the ``sync`` command)."""
        assert portal.mxid is not None
        bot = self._bot
        room = RoomID(portal.mxid)
        name = info.name or portal.name
        if name and (force or name != portal.name):
            await bot.set_room_name(room, name)
            portal = await self._portals.update(dataclasses.replace(portal, name=name))
        topic = group_topic(info)
        if force or topic != (portal.topic or ""):
            content = RoomTopicStateEventContent(topic=topic)
            await bot.send_state_event(room, EventType.ROOM_TOPIC, content)
            portal = await self._portals.update(dataclasses.replace(portal, topic=topic))
        return await self._follow_picture(portal, info.picture, force)

    async def _follow_picture(
        self, portal: PortalRecord, picture: Picture | None, force: bool = False
    ) -> PortalRecord:
        """The group's picture as the room avatar (fetched once per picture; a picture that
        cannot be fetched or decrypted is logged and left out)."""
        if picture is None:
            return portal
        fingerprint = picture_fingerprint(picture)
        if fingerprint == portal.avatar_hash and not force:
            return portal
        try:
            blob = await self._download(picture.url)
            image = decrypt_avatar_from_url(blob, picture.key, picture.url)
        except SessionError as e:
            log.warning("The picture of group portal %s is not shown: %s", portal.mxid, e)
            return portal
        mxc = await self._bot.upload_media(image, mime_type=image_mime_type(image))
        avatar = RoomAvatarStateEventContent(url=mxc)
        await self._bot.send_state_event(RoomID(str(portal.mxid)), EventType.ROOM_AVATAR, avatar)
        changed = dataclasses.replace(portal, avatar_mxc=str(mxc), avatar_hash=fingerprint)
        return await self._portals.update(changed)
