"""``create-group``: a Matrix room bridged to nothing becomes the portal of a new Session group
(README, Running a Session group from Matrix; docs/groups-v2.md §7.1, §7.2, §8).

The group is made by the *acting identity*: the caller's Session login, or the bridge's own
identity when the caller has none and ``groups.create_as_bot`` allows it. It takes the room's
name, topic (the group description) and avatar (the group picture), with the acting identity
its only admin. Its membership, with the admin seed, is stored like a group joined elsewhere
(:meth:`GroupMembers.adopt`), so the identity's group client polls it and the portal machinery
carries messages both ways; the room is attached as its portal (:meth:`PortalRooms.attach`);
the group is added to the login's UserGroups so the phone shows it. Then the Session users the
room already holds are invited on Session: its ghosts (who accept in their apps), and the other
Matrix users' logins (accepted at once: their owners are in the portal already).

Everything that can refuse (a portal already, not a room admin, no acting identity, an
encrypted room, the bot without the power to mark the room, a name or topic over Session's
limits) is checked before anything is
created on Session; a room that cannot be attached afterwards has its new group destroyed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError, MNotFound
from mautrix.types import (
    EventType,
    RoomAvatarStateEventContent,
    RoomID,
    RoomNameStateEventContent,
    RoomTopicStateEventContent,
)

from bridge.config import GroupsConfig
from bridge.core.ghosts import GhostManager
from bridge.core.group.admin_info import too_long
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.group.members import GroupMembers
from bridge.core.group.phone import PhoneGroups
from bridge.core.group.portals import group_channel, group_topic, picture_fingerprint
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.rooms import PortalRoomError, PortalRooms
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.ids import SessionID
from bridge.matrix.reads import media_download, member_display_name
from bridge.matrix.rooms import BRIDGE_INFO_TYPES
from bridge.session.errors import SessionError
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import GroupInviteResponse
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.core.group.create")

__all__ = ["CreatedGroupPortal", "GroupCreateError", "GroupCreator"]


class GroupCreateError(Exception):
    """``create-group`` is refused; the message says why, for the caller."""


@dataclass(frozen=True)
class RoomLook:
    """What the new group takes from the room."""

    name: str
    topic: str
    avatar_mxc: str | None


@dataclass(frozen=True)
class CreatedGroupPortal:
    """The outcome, for the reply."""

    portal: PortalRecord
    group_id: str
    name: str
    acting: str  # the Session id of the admin identity
    as_bot: bool
    invited: tuple[str, ...]  # Session ids invited on Session
    not_invited: tuple[str, ...]  # Session ids whose invite failed
    picture_note: str = ""  # why the room avatar is not the group picture, if it is not


class GroupCreator:
    """See the module docstring."""

    def __init__(
        self,
        *,
        snode: SnodeClient,
        clients: GroupClients,
        session_client: SessionClientOf,
        rooms: PortalRooms,
        portals: PortalRepo,
        members: GroupMembers,
        phone: PhoneGroups,
        logins: LoginManager,
        ghosts: GhostManager,
        bot: IntentAPI,
        bot_identity: Identity,
        bot_mxid: str,
        config: GroupsConfig,
    ) -> None:
        self._snode = snode
        self._clients = clients
        self._session_client = session_client
        self._rooms = rooms
        self._portals = portals
        self._members = members
        self._phone = phone
        self._logins = logins
        self._ghosts = ghosts
        self._bot = bot
        self._bot_identity = bot_identity
        self._bot_mxid = bot_mxid
        self._config = config  # read at each call: ``groups.create_as_bot``
        self._lock = asyncio.Lock()  # one creation at a time: no room becomes two groups

    async def create(self, room_id: str, sender: str, name: str = "") -> CreatedGroupPortal:
        """Make ``room_id`` the portal of a new group created for ``sender``; ``name``
        overrides the room's name. :class:`GroupCreateError` says why not."""
        async with self._lock:
            identity, as_bot = await self._refusals(room_id, sender)
            look = await self._room_look(room_id)
            name = name.strip() or look.name
            if not name:
                raise GroupCreateError(
                    "This room has no name: give the group one (`create-group <name>`)."
                )
            _within_limits(name, look.topic)
            admin = await self._new_group(identity, room_id, sender, name, look.topic)
            picture_note = await self._set_picture(admin, look.avatar_mxc)
            portal = await self._attach(admin, room_id, name, look)
        sid = identity.session_id.value
        invited, failed, logins = await self._invite_present(admin, room_id, sid)
        # Every invite's rekey is pushed: the identities' group clients start at the newest
        # key, so what they send is readable by every invited member (docs/groups-v2.md §3.4).
        await self._members.adopt(sid, admin.group_id.value, name, seed=admin.group.seed)
        await self._phone.on_accepted(sid, admin.group_id.value)  # the phone shows it
        for login_sid in logins:
            try:
                await self._join_login(admin, login_sid)
            except SessionError as e:
                log.info("%s did not join %s: %s", login_sid[:10], admin.group_id.value[:12], e)
        log.info("%s created group %s for room %s", sid[:10], admin.group_id.value[:12], room_id)
        return CreatedGroupPortal(
            portal, admin.group_id.value, name, sid, as_bot, invited, failed, picture_note
        )

    # --- before anything is created -----------------------------------------------------------

    async def _refusals(self, room_id: str, sender: str) -> tuple[Identity, bool]:
        existing = await self._portals.get_by_mxid(room_id)
        if existing is not None and existing.unbridged_at is None:
            raise GroupCreateError("This room is already bridged; `unbridge` it first.")
        if not await self._rooms.is_room_admin(room_id, sender):
            raise GroupCreateError("Only an admin of this room can make a Session group of it.")
        if not self._rooms.allow_encrypted and await self._rooms.is_encrypted(room_id):
            raise GroupCreateError(
                "This room is encrypted, and the bridge does not work in encrypted rooms "
                "(encryption.allow is off). Use an unencrypted room."
            )
        await self._bot_may_mark(room_id)
        return self._acting(await self._logins.logins_of(sender))

    def _acting(self, logins: list[Login]) -> tuple[Identity, bool]:
        if logins:
            return logins[0].identity, False  # the oldest login, as messages use
        if self._config.create_as_bot:
            return self._bot_identity, True
        raise GroupCreateError(
            "You have no Session login, and the new group needs a Session account as its "
            "admin: `login` (or `register`) first, then run `create-group` again."
        )

    async def _bot_may_mark(self, room_id: str) -> None:
        """The bot must be able to send the bridge-info state (and invite ghosts)."""
        levels = await self._bot.get_power_levels(RoomID(room_id))
        mine = levels.get_user_level(self._bot_mxid)  # type: ignore[arg-type]
        info_type = EventType.find(BRIDGE_INFO_TYPES[0], EventType.Class.STATE)
        if mine < levels.get_event_level(info_type) or mine < levels.invite:
            raise GroupCreateError(
                "I need moderator rights in this room to make it a group's portal (to mark it "
                "as bridged and to let Session users in). Give me moderator rights, then run "
                "the command again."
            )

    async def _room_look(self, room_id: str) -> RoomLook:
        room = RoomID(room_id)
        name = await self._state(room, EventType.ROOM_NAME)
        topic = await self._state(room, EventType.ROOM_TOPIC)
        avatar = await self._state(room, EventType.ROOM_AVATAR)
        return RoomLook(
            name=name.name if isinstance(name, RoomNameStateEventContent) and name.name else "",
            topic=topic.topic
            if isinstance(topic, RoomTopicStateEventContent) and topic.topic
            else "",
            avatar_mxc=str(avatar.url)
            if isinstance(avatar, RoomAvatarStateEventContent) and avatar.url
            else None,
        )

    async def _state(self, room: RoomID, event_type: EventType) -> object:
        try:
            return await self._bot.get_state_event(room, event_type)
        except MNotFound:
            return None

    # --- on Session ----------------------------------------------------------------------------

    async def _new_group(
        self, identity: Identity, room_id: str, sender: str, name: str, topic: str
    ) -> GroupAdmin:
        dm = self._session_client(identity.session_id.value)
        if dm is None:
            raise GroupCreateError(
                "Your Session login is not running just now; try again in a moment."
            )
        own_name = (dm.profile.display_name if dm.profile else None) or (
            await member_display_name(self._bot, room_id, sender)
        )
        try:
            return await GroupAdmin.create(
                self._snode,
                identity,
                name,
                dm=dm,
                files=dm.files,
                description=topic,
                own_name=own_name,
            )
        except SessionError as e:
            log.warning("A group for room %s was not created: %s", room_id, e)
            raise GroupCreateError(
                f"The Session network did not take the new group ({e}); nothing was created. "
                "Try again later."
            ) from e

    async def _set_picture(self, admin: GroupAdmin, mxc: str | None) -> str:
        """The room avatar as the group picture; a failure is only noted (the group stands)."""
        if mxc is None:
            return ""
        try:
            image = await media_download(self._bot)(mxc)
            await admin.set_picture(image)
        except (MatrixRequestError, SessionError) as e:
            log.info("The avatar of group %s was not set: %s", admin.group_id.value[:12], e)
            return "The room's avatar could not be made the group picture."
        return ""

    async def _attach(
        self, admin: GroupAdmin, room_id: str, name: str, look: RoomLook
    ) -> PortalRecord:
        group_id = admin.group_id.value
        try:
            portal = await self._rooms.attach(
                room_id, PortalKind.GROUP, group_id, group_channel(group_id, name)
            )
        except PortalRoomError as e:
            await _destroy_quietly(admin)
            raise GroupCreateError(f"{e} (The new Session group was deleted again.)") from e
        info = admin.info
        picture = info.picture
        # The room already shows the group's name, topic and picture: nothing to follow.
        return await self._portals.update(
            dataclasses.replace(
                portal,
                name=name,
                topic=group_topic(info),
                avatar_mxc=look.avatar_mxc if picture else portal.avatar_mxc,
                avatar_hash=picture_fingerprint(picture) if picture else portal.avatar_hash,
            )
        )

    async def _invite_present(
        self, admin: GroupAdmin, room_id: str, acting: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
        """Invite on Session the room's ghosts and the logins of its other Matrix users:
        (invited, not invited, the invited logins)."""
        invited: list[str] = []
        failed: list[str] = []
        logins: list[str] = []
        for sid, name, login in await self._present(room_id, acting):
            try:
                await admin.invite(SessionID.parse(sid), name)
            except (SessionError, ValueError) as e:
                log.info("%s not invited to %s: %s", sid[:10], admin.group_id.value[:12], e)
                failed.append(sid)
                continue
            invited.append(sid)
            if login:
                logins.append(sid)
        return tuple(invited), tuple(failed), logins

    async def _join_login(self, admin: GroupAdmin, sid: str) -> None:
        """A login whose owner is in the room already: its invite is accepted at once (being
        in the portal is what accepting means, bridge/core/group/members.py), as a group
        joined elsewhere with its member auth data; the admin clears its ``I`` as an invite
        response would (docs/groups-v2.md §7.3 4). The 1:1 invite, when the login reads it,
        only refreshes that auth data."""
        member = SessionID.parse(sid)
        group = admin.group_id.value
        auth = make_member_auth_data(admin.group.seed, member)
        await self._members.adopt(sid, group, admin.info.name, auth_data=auth)
        await self._phone.on_accepted(sid, group)
        await admin.handle_invite_response(member, GroupInviteResponse(is_approved=True))

    async def _present(self, room_id: str, acting: str) -> list[tuple[str, str, bool]]:
        """(Session id, name, whether it is a login) of everyone in the room who is on
        Session, but the admin and the bot."""
        found: dict[str, tuple[str, bool]] = {}
        skip = {acting, self._bot_identity.session_id.value}
        for mxid in await self._bot.get_joined_members(RoomID(room_id)):
            user = str(mxid)
            if user == self._bot_mxid:
                continue
            sid = self._ghosts.session_id_for(user)
            if sid is not None:
                found.setdefault(sid, (await member_display_name(self._bot, room_id, user), False))
                continue
            for login in await self._logins.logins_of(user):
                name = await member_display_name(self._bot, room_id, user)
                found.setdefault(login.session_id, (name, True))
        return [(sid, name, login) for sid, (name, login) in found.items() if sid not in skip]


def _within_limits(name: str, topic: str) -> None:
    """Session's limits on a group's name and description (docs/groups-v2.md §2.1), refused
    as the apps refuse them, before anything is created."""
    refusal = too_long("name", name, "Give a shorter one: `create-group <name>`.") or too_long(
        "description", topic, "Shorten the room's topic, then run `create-group` again."
    )
    if refusal is not None:
        raise GroupCreateError(refusal)


async def _destroy_quietly(admin: GroupAdmin) -> None:
    try:
        await admin.destroy()
    except SessionError as e:
        log.warning("The orphaned group %s was not destroyed: %s", admin.group_id.value[:12], e)
