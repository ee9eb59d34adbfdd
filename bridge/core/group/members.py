"""Who is in a group portal and what the group is (Session → Matrix), and how it begins and
ends (docs/architecture.md §4, docs/groups-v2.md §7).

* A login's group invite creates the group's portal (named from the invite) and invites the
  login's owner with a notice naming who invited them. The owner joining the room accepts the
  invite on Session; rejecting the room invite (or leaving before joining) declines it.
  A group the account already joined elsewhere is adopted with :meth:`GroupMembers.adopt`.
* The bot's invites are :mod:`bridge.core.group.bot_invites`'s.
* Members: every listed member but the bridge's own identities is a ghost in the room with
  their group-visible name; admins get :data:`ADMIN_LEVEL`; members no longer listed leave.
* Info name and description are the room's name and topic.
* The identity removed or the group destroyed: a notice says what happened and when; a
  destroyed group's portal becomes a plain room.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from mautrix.appservice import IntentAPI
from mautrix.types import (
    Membership,
    MemberStateEventContent,
    PowerLevelStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)

from bridge.core.ghosts import GhostManager, GhostProfile
from bridge.core.group.clients import GroupClients
from bridge.core.group.portals import GroupPortals
from bridge.core.logins import LoginManager
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.groups import GroupMembershipRecord, GroupRepo
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.send import derived_txn_id, send_notice
from bridge.session.groups.events import (
    GroupDestroyedEvent,
    GroupInfoEvent,
    GroupInviteEvent,
    GroupMembersEvent,
    GroupRemovedEvent,
    RemovalReason,
)
from bridge.session.groups.members import Member

log = logging.getLogger("bridge.core.group.members")

__all__ = ["ADMIN_LEVEL", "GroupMembers"]

ADMIN_LEVEL = 50
#: Ghosts registered and joined at once when a group's member list arrives.
GHOST_JOINS_AT_ONCE = 8
REASONS = {
    RemovalReason.KICKED_NOTE: "was removed from the group by an admin",
    RemovalReason.REVOKED: "lost access to the group (its access was revoked)",
    RemovalReason.NOT_IN_MEMBERS: "is no longer listed as a member of the group",
    RemovalReason.LEFT: "left the group",
}


def _when(ms: int | None = None) -> str:
    seconds = (ms / 1000) if ms is not None else time.time()
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def _profile(member: Member) -> GhostProfile | None:
    """The ghost profile a member shows in the group (name and picture of Members)."""
    if not member.name:
        return None
    picture = member.picture
    return GhostProfile(
        member.name, picture.url if picture else None, picture.key if picture else None
    )


class GroupMembers:
    """Invites, members, Info and endings of group portals (see the module docstring)."""

    def __init__(
        self,
        *,
        clients: GroupClients,
        portals: GroupPortals,
        portal_repo: PortalRepo,
        rooms: PortalRooms,
        groups: GroupRepo,
        ghosts: GhostManager,
        logins: LoginManager,
        cursors: CursorRepo,
        bot: IntentAPI,
        bot_mxid: str,
    ) -> None:
        self._clients = clients
        self._portals = portals
        self._portal_repo = portal_repo
        self._rooms = rooms
        self._groups = groups
        self._ghosts = ghosts
        self._logins = logins
        self._cursors = cursors
        self._bot = bot
        self._bot_mxid = bot_mxid
        #: Called with (session_id, group_id) once a login accepted an invite on Matrix.
        self.on_accepted: Callable[[str, str], Awaitable[None]] | None = None
        #: Bridge-made identities, Session id → Matrix user (docs/migration.md §7): no ghosts.
        self.made_ids: Callable[[], dict[str, str]] = dict

    def owner_of(self, session_id: str) -> str | None:
        """The Matrix owner of a login's Session id (None for the bot or unknown ids)."""
        for login in self._logins.cached_logins():
            if login.session_id == session_id:
                return login.record.mxid
        return None

    def _ours(self) -> set[str]:
        return (
            {login.session_id for login in self._logins.cached_logins()}
            | {self._clients.bot_session_id()}
            | set(self.made_ids())
        )

    # --- invites ----------------------------------------------------------------------------

    async def on_invite(self, session_id: str, event: GroupInviteEvent) -> None:
        """A verified group invite to ``session_id`` (a login's or the bot's)."""
        group, name = event.group.value, event.name
        owner = self.owner_of(session_id)
        if owner is None:
            return  # the bot's invites are bridge/core/group/bot_invites.py's
        key = f"group-invite:{session_id}:{group}:{event.timestamp}"
        if await self._cursors.is_processed(key):
            return
        portal, created = await self._portals.ensure(group, name, invitees=(owner,))
        if not created:
            await self._rooms.invite(str(portal.mxid), owner)
        inviter = await self._ghosts.ensure(event.inviter.value)
        who = inviter.record.displayname or event.inviter.value
        text = (
            f"{who} invited your Session account {session_id[:10]}… to the Session group "
            f"**{name or group[:12]}**. Join this room to accept; reject the invite to decline."
        )
        await send_notice(
            self._bot, str(portal.mxid), text, txn_id=derived_txn_id("group-invite", key)
        )
        await self._cursors.claim_inbound(key, portal_id=portal.id)

    async def adopt(
        self,
        session_id: str,
        group_id: str,
        name: str = "",
        *,
        auth_data: bytes = b"",
        seed: bytes | None = None,
    ) -> PortalRecord:
        """A group ``session_id`` (a login) already joined elsewhere (the account's UserGroups
        config gives its member auth data or admin seed): it becomes an accepted membership
        (no invite response is posted: the account is a member already), its portal is made
        with the login's owner invited, and the group is polled from then on (its history
        arrives first, within ``groups.backfill_limit``)."""
        known = await self._groups.membership(session_id, group_id)
        adopted = known is None or not known.accepted or known.removed
        if adopted:
            auth = auth_data or (known.auth_data if known is not None else b"")
            kept_seed = seed if seed is not None else (known.seed if known is not None else None)
            if not auth and kept_seed is None:
                raise ValueError("a group joined elsewhere needs its auth data or admin seed")
            record = GroupMembershipRecord(
                session_id, group_id, name, auth_data=auth, seed=kept_seed, accepted=True
            )
            await self._groups.save_membership(record)
        owner = self.owner_of(session_id)
        portal, created = await self._portals.ensure(
            group_id, name, invitees=(owner,) if owner else ()
        )
        if owner is not None and not created:
            await self._rooms.invite(str(portal.mxid), owner)
        if adopted or created:  # created: a new room for a group unbridged before
            await self._clients.resume(session_id)  # the room first: history goes into it
        return portal

    async def on_room_member(self, portal: PortalRecord, event: StateEvent) -> bool:
        """A real user's membership in a group portal: the owner of a login with a pending
        invite joining accepts it, leaving (rejecting) declines it. True if it was one."""
        content = event.content
        if not isinstance(content, MemberStateEventContent):
            return False
        if str(event.sender) != event.state_key:
            return False
        membership = content.membership
        group = portal.session_key
        handled = False
        for login in await self._logins.logins_of(str(event.sender)):
            pending = await self._groups.membership(login.session_id, group)
            if pending is None or pending.accepted or pending.removed:
                continue
            client = self._clients.client(login.session_id)
            if membership == Membership.JOIN and client is not None:
                await client.accept(group)
                handled = True
                if self.on_accepted is not None:
                    await self.on_accepted(login.session_id, group)
                log.info("%s accepted group %s", login.session_id[:10], group[:12])
            elif membership == Membership.LEAVE:
                await self._groups.save_membership(dataclasses.replace(pending, removed=True))
                handled = True
                log.info("%s declined group %s", login.session_id[:10], group[:12])
        return handled

    # --- Info and members ---------------------------------------------------------------------

    async def on_info(self, event: GroupInfoEvent) -> None:
        portal = await self._portals.existing(event.group.value)
        if portal is not None:
            await self._portals.follow_info(portal, event.info)

    async def on_members(self, event: GroupMembersEvent) -> None:
        portal = await self._portals.existing(event.group.value)
        if portal is None:
            return
        room = RoomID(str(portal.mxid))
        ours = self._ours()
        listed = [m for m in event.members if m.session_id.value not in ours and m.removal is None]
        gate = asyncio.Semaphore(GHOST_JOINS_AT_ONCE)

        async def join(member: Member) -> tuple[str, bool]:
            async with gate:
                ghost = await self._ghosts.ensure(member.session_id.value, _profile(member))
                await ghost.intent.ensure_joined(room, bot=self._bot)
                return ghost.mxid, member.admin

        # Side by side (a 50-member group took ~30 s one ghost at a time); every join is
        # finished before the first failure is raised, so a retry finds the rest in place.
        results = await asyncio.gather(*(join(m) for m in listed), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        wanted = dict(r for r in results if not isinstance(r, BaseException))
        await self._leave_unlisted(room, set(wanted))
        await self._set_levels(room, wanted)

    async def _leave_unlisted(self, room: RoomID, wanted: set[str]) -> None:
        for mxid in await self._bot.get_joined_members(room):
            sid = self._ghosts.session_id_for(str(mxid))
            if sid is not None and str(mxid) not in wanted:
                ghost = await self._ghosts.ensure(sid)
                await ghost.intent.leave_room(room)

    async def _set_levels(self, room: RoomID, admins: dict[str, bool]) -> None:
        def ghosts_as_listed(levels: PowerLevelStateEventContent) -> bool:
            changed = False
            for mxid, admin in admins.items():
                want = ADMIN_LEVEL if admin else 0
                if levels.get_user_level(UserID(mxid)) != want:
                    levels.set_user_level(UserID(mxid), want)
                    changed = True
            return changed

        await self._rooms.levels.change(room, ghosts_as_listed)

    # --- endings ------------------------------------------------------------------------------

    async def on_removed(self, session_id: str, event: GroupRemovedEvent) -> None:
        portal = await self._portals.existing(event.group.value)
        if portal is None:
            return
        reason = REASONS.get(event.reason, "is no longer a member of the group")
        owner = self.owner_of(session_id)
        whose = "The bridge's Session account" if owner is None else f"{owner}'s Session account"
        if (made_for := self.made_ids().get(session_id)) is not None:
            whose = f"{made_for}'s bridge-made Session identity"
        text = f"{whose} {reason} ({_when()}); it no longer reads or writes this group."
        key = f"group-removed:{session_id}:{event.group.value}:{int(time.time() // 60)}"
        await send_notice(self._bot, str(portal.mxid), text, txn_id=derived_txn_id("group", key))
        if not await self._still_read(event.group.value):
            await self._portal_repo.mark_unbridged(portal.id)

    async def _still_read(self, group: str) -> bool:
        """Whether any identity the bridge runs is still a member of ``group``."""
        for session_id in self._clients.running():
            client = self._clients.client(session_id)
            membership = None if client is None else await client.membership(group)
            if membership is not None and membership.accepted and not membership.removed:
                return True
        return False

    async def on_destroyed(self, event: GroupDestroyedEvent) -> None:
        portal = await self._portals.existing(event.group.value)
        if portal is None:
            return
        text = (
            f"The group's admins deleted this Session group ({_when()}). This room stays as a "
            "plain Matrix room; nothing more reaches Session."
        )
        key = f"group-destroyed:{event.group.value}"
        await send_notice(self._bot, str(portal.mxid), text, txn_id=derived_txn_id("group", key))
        await self._portal_repo.mark_unbridged(portal.id)
