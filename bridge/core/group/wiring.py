"""Builds the group kind: the group clients of every identity, their portals, both directions.

:func:`build_group` is called once by :mod:`bridge.app`, after the direct-chat kind: a group
client rides on its identity's 1:1 client, which :mod:`bridge.app` finds for it
(``session_client``) without this kind importing the direct side. The :class:`GroupKind` it
returns gives the Matrix-side handler (membership of group portals here, everything else to
:mod:`bridge.core.group.outbound`), the outbox deliverers, the login hooks, ``adopt_group``
and start/stop of the group clients.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mautrix.types import MessageEvent, StateEvent

from bridge.core.group.admin_events import GroupAdminEvents, build_group_admin
from bridge.core.group.bot_invites import BotInvites
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.group.create import GroupCreator
from bridge.core.group.inbound import GroupInbound
from bridge.core.group.members import GroupMembers
from bridge.core.group.outbound import GroupOutbound, build_group_outbound
from bridge.core.group.phone import AccountGroups, PhoneGroups
from bridge.core.group.portals import GroupPortals
from bridge.core.group.resync import GroupResync, Synced, unbridged_group
from bridge.core.group.store import DbGroupStore, SealedGroupRepo
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.events import PortalHandler
from bridge.core.portal.kind import PortalDeps
from bridge.core.portal.outbox import Deliver
from bridge.core.portal.router import RoomEvent
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.users import UserRepo
from bridge.session.client import SessionClient
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupDestroyedEvent,
    GroupEvent,
    GroupInfoEvent,
    GroupInviteEvent,
    GroupMembersEvent,
    GroupMessageEvent,
    GroupPromotedEvent,
    GroupReactionEvent,
    GroupRemovedEvent,
    GroupUnsendEvent,
)
from bridge.session.keys import Identity
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.core.group.wiring")


class GroupHandler:
    """The Matrix side of group portals: a member's own membership is the kind's (accepting
    or declining an invite); everything else goes to the outbound side."""

    def __init__(
        self,
        members: GroupMembers,
        outbound: GroupOutbound,
        admin: GroupAdminEvents | None = None,
    ) -> None:
        self._members = members
        self._outbound = outbound
        self._admin = admin  # room administration → the group (admin_events.py)

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        await self._outbound.handle_message(portal, event, name)

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        if isinstance(event, StateEvent):
            if await self._members.on_room_member(portal, event):
                return
            if self._admin is not None and await self._admin.on_state(portal, event):
                return
        await self._outbound.handle_event(portal, event)


@dataclass
class GroupKind:
    """The group side, wired; nothing runs until :meth:`start`."""

    clients: GroupClients
    inbound: GroupInbound
    members: GroupMembers
    bot_invites: BotInvites
    outbound: GroupOutbound
    bot_login: Login
    logins: LoginManager
    users: UserRepo
    phone: PhoneGroups
    resync: GroupResync
    portal_kind: PortalKind = PortalKind.GROUP
    #: ``create-group`` (bridge/core/group/create.py).
    creator: GroupCreator | None = None
    #: Room administration mirrored into the group (bridge/core/group/admin_events.py).
    admin: GroupAdminEvents | None = None

    @property
    def handler(self) -> PortalHandler:
        return GroupHandler(self.members, self.outbound, self.admin)

    @property
    def deliverers(self) -> Mapping[str, Deliver]:
        return self.outbound.deliverers()

    async def announce(self, portal: PortalRecord, text: str) -> None:
        """Post ``text`` in the portal's group as the bot (deadline reminders and the last
        notice of ``finalize``, docs/migration.md §5, §6)."""
        client = self.clients.client(self.clients.bot_session_id())
        if client is None:
            raise RuntimeError("the bridge's Session account does not run a group client")
        await client.send_text(portal.session_key, text)

    async def sync(self, portal: PortalRecord) -> Synced:
        """The ``sync`` command: re-read the group's members and Info now (raises
        :class:`~bridge.core.group.resync.GroupSyncError` saying why it cannot)."""
        return await self.resync.sync(portal)

    async def unbridged(self, portal: PortalRecord) -> None:
        """After ``unbridge`` (or ``finalize``): the group is no longer polled."""
        await self.resync.unbridged(portal)

    async def start(self) -> None:
        """Start the group clients of the bot and of every stored login (after the direct
        kind started their 1:1 clients)."""
        self.clients.bind_handler(self.dispatch)
        await self.clients.start_identity(self.bot_login.identity)
        for record in await self.users.list_user_logins():
            login = await self.logins.login_by_id(record.id)
            if login is not None:
                await self.clients.start_identity(login.identity)
                await self.phone.sync_login(login.session_id)

    async def stop(self) -> None:
        await self.clients.stop()

    async def before_client_start(self, identity: Identity, client: SessionClient) -> None:
        """The direct side's hook (bridge.app): the identity's group client starts, subscribed
        to its 1:1 client, before that client polls, so no invite is acknowledged unseen."""
        self.clients.bind_handler(self.dispatch)
        await self.clients.start_identity(identity, client)

    async def on_login(self, login: Login) -> None:
        await self.clients.start_identity(login.identity)
        await self.phone.sync_login(login.session_id)

    def bind_account(self, account: AccountGroups) -> None:
        """The logins' user configs (the direct side's), bound by :mod:`bridge.app`: groups
        joined on the phone are adopted, accepted ones written back, reads mirrored."""
        self.phone.bind(account)
        self.members.on_accepted = self.phone.on_accepted

    async def handle_ephemeral(self, raw: Mapping[str, Any]) -> None:
        """Read receipts in group portals (the phone shows the group read)."""
        await self.phone.on_ephemeral(raw)

    async def on_logout(self, login: Login) -> None:
        await self.clients.stop_identity(login.session_id)

    async def adopt_group(
        self,
        session_id: str,
        group_id: str,
        name: str = "",
        *,
        auth_data: bytes = b"",
        seed: bytes | None = None,
    ) -> PortalRecord:
        """A group ``session_id`` (a login) already joined elsewhere (UserGroups: its auth
        data or admin seed): polled from now on, its portal made, the owner invited."""
        return await self.members.adopt(session_id, group_id, name, auth_data=auth_data, seed=seed)

    async def dispatch(self, session_id: str, event: GroupEvent) -> None:
        """Every group event of every identity (delivered one at a time per identity)."""
        if isinstance(
            event,
            GroupMessageEvent | GroupReactionEvent | GroupUnsendEvent | GroupContentDeletedEvent,
        ):
            await self.inbound.handle(session_id, event)
            if isinstance(event, GroupMessageEvent) and self.admin is not None:
                await self.admin.on_group_message(session_id, event)  # as a group admin
        elif isinstance(event, GroupInviteEvent) and session_id == self.clients.bot_session_id():
            await self.bot_invites.on_invite(event)
        elif isinstance(event, GroupInviteEvent):
            await self.members.on_invite(session_id, event)
        elif isinstance(event, GroupInfoEvent):
            await self.members.on_info(event)
        elif isinstance(event, GroupMembersEvent):
            await self.members.on_members(event)
            if self.admin is not None:
                await self.admin.on_members(session_id, event)  # group admins → room admins
        elif isinstance(event, GroupRemovedEvent):
            await self.members.on_removed(session_id, event)
        elif isinstance(event, GroupDestroyedEvent):
            await self.members.on_destroyed(event)
        elif isinstance(event, GroupPromotedEvent):
            log.info("%s was promoted in group %s", session_id[:10], event.group.value[:12])
            if self.admin is not None:
                await self.admin.on_promoted(session_id, event)


def build_group(
    deps: PortalDeps, snode: SnodeClient, session_client: SessionClientOf
) -> GroupKind:
    """Build every part of group portals; nothing runs until :meth:`GroupKind.start`.
    ``snode`` is the storage client every identity shares; ``session_client`` finds the
    running 1:1 client of a Session id."""
    repos, config = deps.repos, deps.config
    # Memberships' auth data and seeds encrypted at rest with the bridge's secrets key.
    groups = SealedGroupRepo(repos.db, SeedVault(parse_secrets_key(config.bridge.secrets_key)))
    clients = GroupClients(
        snode=snode,
        store_of=lambda session_id: DbGroupStore(session_id, groups, repos.cursors),
        session_client=session_client,
        bot_session_id=deps.bot_login.session_id,
        poll_interval=config.session.poll_interval,
        skip_group=unbridged_group(repos.portals),
    )
    portals = GroupPortals(
        bot=deps.bot,
        rooms=deps.rooms,
        portals=repos.portals,
        download=deps.downloads,
        public=config.groups.public_portals,
    )
    inbound = GroupInbound(
        portals=portals,
        ghosts=deps.ghosts,
        messages=repos.messages,
        cursors=repos.cursors,
        own_ids=deps.own_ids,
        portal_lock=deps.portal_lock,
        bot=deps.bot,
        session_client=session_client,
        kv=repos.kv,
        config=config.groups,
        bot_session_id=deps.bot_login.session_id,
    )
    members = GroupMembers(
        clients=clients,
        portals=portals,
        portal_repo=repos.portals,
        rooms=deps.rooms,
        groups=groups,
        ghosts=deps.ghosts,
        logins=deps.logins,
        cursors=repos.cursors,
        bot=deps.bot,
        bot_mxid=config.bot_mxid,
    )
    bot_invites = BotInvites(
        clients=clients,
        portals=portals,
        groups=groups,
        session_client=session_client,
        bot=deps.bot,
        config=config.groups,
        alias_prefix=config.bridge.username_template.partition("{userid}")[0],
    )
    phone = PhoneGroups(
        clients=clients,
        members=members,
        groups=groups,
        portals=repos.portals,
        messages=repos.messages,
        logins=deps.logins,
    )
    admin = build_group_admin(deps, snode, session_client, clients, members, portals)
    return GroupKind(
        admin=admin,
        resync=GroupResync(
            clients=clients,
            members=members,
            portals=portals,
            room_admins=admin.raise_room_admins,
        ),
        phone=phone,
        clients=clients,
        inbound=inbound,
        members=members,
        bot_invites=bot_invites,
        outbound=build_group_outbound(deps, clients),
        bot_login=deps.bot_login,
        logins=deps.logins,
        users=repos.users,
        creator=GroupCreator(
            snode=snode,
            clients=clients,
            session_client=session_client,
            rooms=deps.rooms,
            portals=repos.portals,
            members=members,
            phone=phone,
            logins=deps.logins,
            ghosts=deps.ghosts,
            bot=deps.bot,
            bot_identity=deps.bot_login.identity,
            bot_mxid=config.bot_mxid,
            config=config.groups,
        ),
    )
