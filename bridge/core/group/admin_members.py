"""Memberships in a group portal changed on Matrix become group changes (docs/groups-v2.md
§7.2, §7.5), made by the acting identity (:mod:`bridge.core.group.admin_acting`):

* a room admin inviting a Session user's ghost invites that Session account to the group
  (its ghost joins once the group lists it); refused, the invite is withdrawn. The invite
  shares the group's recent history (supplemental keys, §3.5) as the Session apps' "Share
  message history" does, unless ``groups.invite_with_history`` is off;
* a room admin kicking or banning a ghost removes that member with a rekey; refused, the ghost
  is let back in while it is still a member;
* a Matrix user who joins the portal with a login that is not in the group has it added at
  once when an admin identity is at hand (being in the portal is what accepting means,
  :mod:`bridge.core.group.members`): its membership is stored with its member auth data as a
  group joined elsewhere, and the admin marks the invite answered (§7.3 4); without an admin
  at hand the bot says so in the room, once per login (remembered in the kv table). A user
  whose login holds the group seed is made a room admin (:mod:`bridge.core.group.admin_levels`).
  A login shares no history: its owner reads it in the room.

Memberships the bridge itself changes (its ghosts joining and leaving, the bot inviting) are
sent by the bot or a ghost, which the router never passes here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mautrix.appservice import IntentAPI
from mautrix.errors import IntentError, MatrixRequestError
from mautrix.types import Membership, MemberStateEventContent, RoomID, StateEvent, UserID

from bridge.config import GroupsConfig
from bridge.core.ghosts import GhostManager
from bridge.core.group.admin_acting import Acting, ActingAdmins, AdminRefused
from bridge.core.group.admin_levels import GroupLevelsFromMatrix
from bridge.core.group.members import GroupMembers
from bridge.core.logins import Login, LoginManager
from bridge.db.records import PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.ids import SessionID
from bridge.matrix.reads import member_display_name
from bridge.matrix.send import derived_txn_id, send_notice
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.messages import GroupInviteResponse, Profile

log = logging.getLogger("bridge.core.group.admin_members")

__all__ = ["GroupMembersFromMatrix"]

NOT_A_SESSION_ACCOUNT = "Only Session accounts (IDs starting with 05) can be group members."
NOT_ADDED = (
    "{owner}'s Session account {sid}… could not be added to this Session group: neither a "
    "Session login in this room nor the bridge's own Session account is an admin of the group. "
    "A group admin on Session can invite {sid}… (or promote a login of someone in this room, "
    "and the bridge adds it then). Until then, {owner}'s messages here do not reach Session "
    "as their own."
)
#: kv key prefix: the join of this login was already explained in this portal.
NOT_ADDED_KEY = "group-not-added:"
#: (Session id, group id) once a login was added to a group (its phone's UserGroups).
OnAccepted = Callable[[str, str], Awaitable[None]]


class GroupMembersFromMatrix:
    """Invites, kicks, bans and joins in group portals (see the module docstring)."""

    def __init__(
        self,
        *,
        acting: ActingAdmins,
        levels: GroupLevelsFromMatrix,
        members: GroupMembers,
        ghosts: GhostManager,
        logins: LoginManager,
        bot: IntentAPI,
        config: GroupsConfig,
        kv: KVRepo,
    ) -> None:
        self._acting = acting
        self._levels = levels
        self._members = members
        self._ghosts = ghosts
        self._logins = logins
        self._bot = bot
        self._config = config  # read at each invite: ``groups.invite_with_history``
        self._kv = kv

    async def on_member(self, portal: PortalRecord, event: StateEvent) -> bool:
        """A membership change by a Matrix user; True if it was about the group."""
        content = event.content
        if not isinstance(content, MemberStateEventContent):
            return False
        prev = event.unsigned.prev_content if event.unsigned else None
        before = prev.membership if isinstance(prev, MemberStateEventContent) else None
        target, sender = str(event.state_key), str(event.sender)
        sid = self._ghosts.session_id_for(target)
        membership = content.membership
        if sid is not None and membership == Membership.INVITE and before != Membership.INVITE:
            await self._invited(portal, sender, target, sid)
        elif sid is not None and membership in (Membership.LEAVE, Membership.BAN):
            if sender == target or before not in (Membership.JOIN, Membership.INVITE):
                return False  # an unban, or the ghost itself
            await self._kicked(portal, sender, target, sid, banned=membership == Membership.BAN)
        elif sid is None and sender == target and membership == Membership.JOIN:
            if before == Membership.JOIN:
                return False  # a new display name or avatar
            await self._joined(portal, sender)
        else:
            return False
        return True

    # --- ghosts -------------------------------------------------------------------------------

    def _listed(self, group: str, sid: str) -> bool | None:
        """Whether the group lists ``sid`` (None: the bridge has not read the group)."""
        view = self._acting.view(group)
        if view is None:
            return None
        member = view.members.get(SessionID.parse(sid))
        return member is not None and member.removal is None

    async def _invited(self, portal: PortalRecord, sender: str, ghost: str, sid: str) -> None:
        try:
            member = SessionID.parse(sid)
        except ValueError:
            await self._withdraw(portal, ghost)
            raise AdminRefused(NOT_A_SESSION_ACCOUNT) from None
        if self._listed(portal.session_key, sid):
            await self._let_in(portal, sid, banned=False)  # a member already: just let in
            return
        name = await member_display_name(self._bot, str(portal.mxid), ghost)
        name = "" if name == ghost else name
        history = self._config.invite_with_history
        try:
            await self._acting.run(
                portal, sender, "invite people", lambda a: a.invite(member, name, history=history)
            )
        except AdminRefused:
            await self._withdraw(portal, ghost)
            raise
        log.info("%s invited to group %s from Matrix", sid[:10], portal.session_key[:12])

    async def _kicked(
        self, portal: PortalRecord, sender: str, ghost: str, sid: str, *, banned: bool
    ) -> None:
        try:
            member = SessionID.parse(sid)
        except ValueError:
            return  # not a Session account: never a member
        if self._listed(portal.session_key, sid) is False:
            return  # not in the group (any more): nothing to mirror
        try:
            acting, _ = await self._acting.run(
                portal, sender, "remove people", lambda a: a.remove([member])
            )
        except AdminRefused:
            await self._let_in(portal, sid, banned=banned)
            raise
        generation = acting.admin.keyring.current_generation
        await self._acting.catch_up(portal.session_key, generation)
        log.info("%s removed from group %s from Matrix", sid[:10], portal.session_key[:12])

    async def _withdraw(self, portal: PortalRecord, ghost: str) -> None:
        try:
            await self._bot.kick_user(RoomID(str(portal.mxid)), UserID(ghost), "not invited")
        except (IntentError, MatrixRequestError):
            log.exception("Could not withdraw the invite of %s to %s", ghost, portal.mxid)

    async def _let_in(self, portal: PortalRecord, sid: str, *, banned: bool) -> None:
        """The ghost of a member back in the room (unbanned first)."""
        room = RoomID(str(portal.mxid))
        try:
            ghost = await self._ghosts.ensure(sid)
            if banned:
                await self._bot.unban_user(room, UserID(ghost.mxid))
            await ghost.intent.ensure_joined(room, ignore_cache=True, bot=self._bot)
        except (IntentError, MatrixRequestError):
            log.exception("Could not let %s back into %s", sid[:10], portal.mxid)

    async def invite_member(
        self, portal: PortalRecord, sender: str, member: SessionID, history: bool | None = None
    ) -> Acting:
        """``invite <Session ID>`` by ``sender``: a group invite (sharing history per
        ``history``, else per ``groups.invite_with_history``), or, for the login of a Matrix
        user already in the room, the login added at once (as when they join)."""
        login = next(
            (x for x in self._logins.cached_logins() if x.session_id == member.value), None
        )
        room = RoomID(str(portal.mxid))
        if login is not None and UserID(str(login.record.mxid)) in (
            await self._bot.get_joined_members(room)
        ):
            if await self._in_group([login], portal.session_key):
                raise AdminRefused(f"{member.value} is in this group already.")
            name = self._acting.profile_name(login.session_id)
            acting, _ = await self._acting.run(
                portal, sender, "invite people", lambda a: self._add_login(a, login, name)
            )
            await self._tell_added(portal, login, acting)
            return acting
        shared = self._config.invite_with_history if history is None else history
        acting, _ = await self._acting.run(
            portal, sender, "invite people", lambda a: a.invite(member, history=shared)
        )
        return acting

    # --- Matrix users joining -----------------------------------------------------------------

    async def _joined(self, portal: PortalRecord, mxid: str) -> None:
        await self._levels.make_room_admin(portal, mxid)
        logins = await self._logins.logins_of(mxid)
        if not logins or await self._in_group(logins, portal.session_key):
            return
        login = logins[0]
        acting = await self._acting.find(portal, None)
        if acting is None:
            await self._tell_not_added(portal, login)
            return
        name = self._acting.profile_name(login.session_id) or (
            await member_display_name(self._bot, str(portal.mxid), mxid)
        )
        await ActingAdmins.call(
            acting, "add your Session login", lambda a: self._add_login(a, login, name)
        )
        await self._tell_added(portal, login, acting)

    async def _in_group(self, logins: list[Login], group: str) -> bool:
        """Whether one of ``logins`` is in the group, or invited to it."""
        for login in logins:
            client = self._acting.client(login.session_id)
            membership = None if client is None else await client.membership(group)
            if membership is not None and not membership.removed:
                return True
        return False

    async def _add_login(self, admin: GroupAdmin, login: Login, name: str) -> None:
        """Invite ``login`` without a 1:1 invite (it is ours) and store it as joined."""
        member = SessionID.parse(login.session_id)
        group = admin.group_id.value
        dm, admin.dm = admin.dm, None  # no 1:1 invite: nothing for the login to accept
        try:
            await admin.invite(member, name)
        finally:
            admin.dm = dm
        auth = make_member_auth_data(admin.group.seed, member)
        await self._members.adopt(login.session_id, group, admin.info.name, auth_data=auth)
        if self._members.on_accepted is not None:
            await self._members.on_accepted(login.session_id, group)  # the phone shows it
        response = GroupInviteResponse(is_approved=True, profile=Profile(display_name=name))
        await admin.handle_invite_response(member, response)

    async def _tell_not_added(self, portal: PortalRecord, login: Login) -> None:
        """No admin identity to add ``login``: said in the room once per portal and login."""
        key = f"{NOT_ADDED_KEY}{portal.session_key}:{login.session_id}"
        if await self._kv.get(key) is not None:
            return
        owner = str(login.record.mxid)
        text = NOT_ADDED.format(owner=owner, sid=login.session_id[:10])
        await send_notice(self._bot, str(portal.mxid), text, txn_id=derived_txn_id("group", key))
        await self._kv.set(key, "1")
        log.info(
            "%s not added to group %s: no admin", login.session_id[:10], portal.session_key[:12]
        )

    async def _tell_added(self, portal: PortalRecord, login: Login, acting: Acting) -> None:
        owner = login.record.mxid
        text = (
            f"Added {owner}'s Session account {login.session_id[:10]}… to this Session group "
            f"(as {acting.session_id[:10]}…, a group admin)."
        )
        key = f"group-added:{portal.session_key}:{login.session_id}"
        await send_notice(self._bot, str(portal.mxid), text, txn_id=derived_txn_id("group", key))
        await self._kv.delete(f"{NOT_ADDED_KEY}{portal.session_key}:{login.session_id}")
