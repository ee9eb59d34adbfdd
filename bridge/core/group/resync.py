"""``sync`` and ``unbridge`` of a group portal (README, Group portals).

``sync`` re-reads a group now: the group is polled at once, and its current Info and Members
(as the reading identity holds them) are applied to the room even where the bridge thinks
nothing changed: ghosts join with their group names and pictures, ghosts of non-members
leave, admins get their level (the Matrix users whose logins are group admins too: room admin,
``room_admins``), and the room's name, topic and avatar are set again.

``unbridge`` (the generic command, bridge/commands/portals.py) ends the portal; this kind
then stops polling the group for every identity, and does not poll it after a restart either
(:class:`~bridge.core.group.clients.GroupClients` skips groups whose portal is unbridged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.core.group.clients import GroupClients, SkipGroup
from bridge.core.group.members import GroupMembers
from bridge.core.group.portals import GroupPortals
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.session.groups.events import GroupMembersEvent
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member import GroupsClient

__all__ = ["GroupResync", "GroupSyncError", "Synced", "unbridged_group"]


def unbridged_group(portals: PortalRepo) -> SkipGroup:
    """Whether a group's portal was unbridged (the group is then not polled)."""

    async def skip(group_id: str) -> bool:
        portal = await portals.get_by_key(PortalKind.GROUP, group_id)
        return portal is not None and portal.unbridged_at is not None

    return skip


class GroupSyncError(Exception):
    """Why a group portal cannot be synced (said to the user as it is)."""


@dataclass(frozen=True)
class Synced:
    """What ``sync`` applied."""

    name: str
    members: int
    admins: int


class GroupResync:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clients: GroupClients,
        members: GroupMembers,
        portals: GroupPortals,
        room_admins: Callable[[PortalRecord], Awaitable[int]] | None = None,
    ) -> None:
        self._clients = clients
        self._members = members
        self._portals = portals
        self._room_admins = room_admins  # bridge/core/group/admin_events.py

    async def _reader(self, group: str) -> tuple[GroupsClient, GroupState] | None:
        """A running identity that is a member of ``group`` and holds its keys."""
        for session_id in self._clients.running():
            client = self._clients.client(session_id)
            if client is None:
                continue
            membership = await client.membership(group)
            state = client.poller.state(group)
            if membership is None or not membership.accepted or membership.removed:
                continue
            if state is not None and state.ready:
                return client, state
        return None

    async def sync(self, portal: PortalRecord) -> Synced:
        """Re-read ``portal``'s group now (see the module docstring)."""
        group = portal.session_key
        found = await self._reader(group)
        if found is None:
            raise GroupSyncError(
                "None of the bridge's Session accounts reads this group now (not a member, or "
                "no group key yet), so there is nothing to re-read."
            )
        client, state = found
        client.poll_now()
        portal = await self._portals.follow_info(portal, state.info, force=True)
        await self._members.on_members(GroupMembersEvent(state.group_id, state.members))
        if self._room_admins is not None:
            await self._room_admins(portal)
        listed = [m for m in state.members if m.removal is None]
        return Synced(
            name=portal.name or group[:12],
            members=len(listed),
            admins=sum(1 for m in listed if m.admin),
        )

    async def unbridged(self, portal: PortalRecord) -> None:
        """After ``portal`` was unbridged: no identity polls its group any more."""
        if portal.kind == PortalKind.GROUP:
            self._clients.stop_polling(portal.session_key)
