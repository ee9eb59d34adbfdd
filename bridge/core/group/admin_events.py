"""Matrix room administration of group portals mirrored into the Session group (README,
Running a Session group from Matrix): the portal's state events go to the part that handles
them (:mod:`bridge.core.group.admin_members`, :mod:`bridge.core.group.admin_levels`,
:mod:`bridge.core.group.admin_info`), and a login promoted on Session makes its owner a room
admin. Everything is allowed only to a room admin, with an acting identity that is a group
admin (:mod:`bridge.core.group.admin_acting`); a refusal raises
:class:`~bridge.core.group.admin_acting.AdminRefused` after the room was put back, and the
portal machinery tells the sender.
"""

from __future__ import annotations

from mautrix.appservice import IntentAPI
from mautrix.types import EventType, StateEvent

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
from bridge.db.repos.portals import PortalRepo
from bridge.ids import SessionID
from bridge.matrix.reads import media_download
from bridge.session.groups.events import GroupMessageEvent, GroupPromotedEvent
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
    ) -> None:
        self.acting = acting
        self._portals = portals
        self._logins = logins
        self._levels = GroupLevelsFromMatrix(acting=acting, ghosts=ghosts, logins=logins, bot=bot)
        self._members = GroupMembersFromMatrix(
            acting=acting,
            levels=self._levels,
            members=members,
            ghosts=ghosts,
            logins=logins,
            bot=bot,
        )
        self._duties = AdminDuties(acting)
        self._info = GroupInfoFromMatrix(
            acting=acting, portals=portal_repo, bot=bot, download=media_download(bot)
        )

    async def invite(self, portal: PortalRecord, sender: str, member: SessionID) -> Acting:
        """``invite <Session ID>`` (:class:`AdminRefused` says why not)."""
        return await self._members.invite_member(portal, sender, member)

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
    )
