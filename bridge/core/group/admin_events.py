"""Matrix room administration of group portals mirrored into the Session group (README,
Running a Session group from Matrix): the portal's state events go to the part that handles
them (:mod:`bridge.core.group.admin_members`, :mod:`bridge.core.group.admin_levels`,
:mod:`bridge.core.group.admin_info`), and a login promoted on Session makes its owner a room
admin. So does a login that holds the group's seed already (a group admin from before the
bridge raised admins, or promoted while it was down): the first time it reads the group after
a start, and at ``sync``. Everything is allowed only to a room admin, with an acting
identity that is a group admin (:mod:`bridge.core.group.admin_acting`); a refusal raises
:class:`~bridge.core.group.admin_acting.AdminRefused` after the room was put back, and the
portal machinery tells the sender.
"""

from __future__ import annotations

from mautrix.appservice import IntentAPI
from mautrix.types import EventType, RoomID, StateEvent, UserID

from bridge.config import GroupsConfig
from bridge.core.ghosts import GhostManager
from bridge.core.group.admin_acting import Acting, ActingAdmins
from bridge.core.group.admin_duties import AdminDuties
from bridge.core.group.admin_info import GroupInfoFromMatrix
from bridge.core.group.admin_levels import GroupLevelsFromMatrix
from bridge.core.group.admin_members import GroupMembersFromMatrix
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.group.members import GroupMembers
from bridge.core.group.portals import GroupPortals
from bridge.core.logins import LoginManager
from bridge.core.portal.kind import PortalDeps
from bridge.db.records import PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.portals import PortalRepo
from bridge.ids import SessionID
from bridge.matrix.reads import media_download
from bridge.matrix.room_levels import RoomLevels
from bridge.session.groups.events import (
    GroupMembersEvent,
    GroupMessageEvent,
    GroupPromotedEvent,
)
from bridge.session.snode.rpc import SnodeClient

__all__ = ["GroupAdminEvents", "build_group_admin"]


class GroupAdminEvents:
    """State events of group portals → the group; promotions → room admins."""

    def __init__(
        self,
        *,
        acting: ActingAdmins,
        members: GroupMembers,
        portals: GroupPortals,
        portal_repo: PortalRepo,
        ghosts: GhostManager,
        logins: LoginManager,
        bot: IntentAPI,
        levels: RoomLevels,
        config: GroupsConfig,
        kv: KVRepo,
    ) -> None:
        self.acting = acting
        self._portals = portals
        self._logins = logins
        self._bot = bot
        # (group, Session id) of the logins whose owners were raised since the start
        self._raised: set[tuple[str, str]] = set()
        self._levels = GroupLevelsFromMatrix(
            acting=acting, ghosts=ghosts, logins=logins, levels=levels
        )
        self._members = GroupMembersFromMatrix(
            acting=acting,
            levels=self._levels,
            members=members,
            ghosts=ghosts,
            logins=logins,
            bot=bot,
            config=config,
            kv=kv,
        )
        self._duties = AdminDuties(acting)
        self._info = GroupInfoFromMatrix(
            acting=acting, portals=portal_repo, bot=bot, download=media_download(bot)
        )

    async def invite(
        self, portal: PortalRecord, sender: str, member: SessionID, history: bool | None = None
    ) -> Acting:
        """``invite <Session ID>`` (:class:`AdminRefused` says why not); ``history``: share
        the group's recent history (None: as ``groups.invite_with_history`` says)."""
        return await self._members.invite_member(portal, sender, member, history)

    async def on_state(self, portal: PortalRecord, event: StateEvent) -> bool:
        """A Matrix user's state event in a group portal; True if it was handled here."""
        if event.type == EventType.ROOM_MEMBER:
            return await self._members.on_member(portal, event)
        if event.type == EventType.ROOM_POWER_LEVELS:
            return await self._levels.on_levels(portal, event)
        return await self._info.on_state(portal, event)

    async def on_group_message(self, session_id: str, event: GroupMessageEvent) -> None:
        """A group message ``session_id`` saw: invite responses and departures answered as a
        group admin when the bridge holds the seed (:mod:`bridge.core.group.admin_duties`)."""
        await self._duties.on_message(session_id, event)

    async def on_promoted(self, session_id: str, event: GroupPromotedEvent) -> None:
        """``session_id`` (one of ours) became a group admin: its owner, if in the portal,
        becomes a room admin."""
        portal = await self._portals.existing(event.group.value)
        if portal is None:
            return
        for login in self._logins.cached_logins():
            if login.session_id == session_id and login.record.mxid is not None:
                await self._levels.make_room_admin(portal, login.record.mxid)

    async def on_members(self, session_id: str, event: GroupMembersEvent) -> None:
        """``session_id`` (one of ours) read the group's Members: the first time since the
        start, if it is a login holding the group's seed, its owner in the portal is made a
        room admin (a group admin from before, or promoted while the bridge was down)."""
        group = event.group.value
        if (group, session_id) in self._raised:
            return
        owner = next(
            (x.record.mxid for x in self._logins.cached_logins() if x.session_id == session_id),
            None,
        )
        if owner is None or await self.acting.seed_of(session_id, group) is None:
            self._raised.add((group, session_id))  # the bot, or a member: nothing to raise
            return
        portal = await self._portals.existing(group)
        if portal is None:
            return  # no room yet: its owner is raised when they join it
        self._raised.add((group, session_id))
        if UserID(owner) in await self._bot.get_joined_members(RoomID(str(portal.mxid))):
            await self._levels.make_room_admin(portal, owner)

    async def raise_room_admins(self, portal: PortalRecord) -> int:
        """Make every Matrix user in the portal whose login holds the group's seed a room
        admin (``sync``); how many were raised."""
        joined = await self._bot.get_joined_members(RoomID(str(portal.mxid)))
        owners = {str(x.record.mxid) for x in self._logins.cached_logins() if x.record.mxid}
        raised = 0
        for mxid in sorted(owners & {str(m) for m in joined}):
            raised += await self._levels.make_room_admin(portal, mxid)
        return raised


def build_group_admin(
    deps: PortalDeps,
    snode: SnodeClient,
    session_client: SessionClientOf,
    clients: GroupClients,
    members: GroupMembers,
    portals: GroupPortals,
) -> GroupAdminEvents:
    """The Matrix-side administration of group portals, for the kind's wiring."""
    acting = ActingAdmins(
        clients=clients,
        logins=deps.logins,
        rooms=deps.rooms,
        bot=deps.bot,
        snode=snode,
        session_client=session_client,
        may_use=deps.may_relay,  # any permission level at all (relay is the lowest)
    )
    return GroupAdminEvents(
        acting=acting,
        members=members,
        portals=portals,
        portal_repo=deps.repos.portals,
        ghosts=deps.ghosts,
        logins=deps.logins,
        bot=deps.bot,
        levels=deps.rooms.levels,
        config=deps.config.groups,
        kv=deps.repos.kv,
    )
