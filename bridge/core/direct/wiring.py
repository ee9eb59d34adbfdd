"""Builds the direct-chat kind: the running Session accounts, their portals, both directions.

:func:`build_direct` is called once by :mod:`bridge.app`; the :class:`DirectKind` it returns
is what the rest of the bridge needs: the Matrix-side handler, the outbox deliverer, the
login hooks, the hook for events outside portals (a user inviting a ghost), and start/stop of
the Session clients (the bot's and every stored login's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mautrix.types import StateEvent

from bridge.core.direct.accounts import SessionAccounts, build_snode_client
from bridge.core.direct.chats import DirectChats
from bridge.core.direct.delivery import DirectDelivery
from bridge.core.direct.inbound import DirectInbound
from bridge.core.direct.outbound import DM_KIND, DirectOutbound
from bridge.core.direct.profiles import SessionProfiles
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.events import PortalHandler
from bridge.core.portal.kind import PortalDeps
from bridge.core.portal.outbox import Deliver
from bridge.core.portal.router import RoomEvent
from bridge.db.records import PortalKind
from bridge.db.repos.users import UserRepo
from bridge.matrix.reads import media_download
from bridge.session.dm_media import FileTransfer


@dataclass
class DirectKind:
    """The direct-chat side, wired; nothing runs until :meth:`start`."""

    accounts: SessionAccounts
    chats: DirectChats
    inbound: DirectInbound
    outbound: DirectOutbound
    profiles: SessionProfiles
    bot_login: Login
    bot_name: str
    bot_avatar: str
    logins: LoginManager
    users: UserRepo
    portal_kind: PortalKind = PortalKind.DIRECT

    @property
    def handler(self) -> PortalHandler:
        return self.outbound

    @property
    def deliverers(self) -> Mapping[str, Deliver]:
        return {DM_KIND: self.outbound.deliver}

    async def start(self) -> None:
        """Start the bot's Session client (with its name and picture) and every stored
        login's (with its owner's Matrix name)."""
        profile = await self.profiles.bot_profile(self.bot_name, self.bot_avatar)
        bot = await self.accounts.start_bot(self.bot_login.identity, profile)
        await self.profiles.refresh_bot_avatar(bot, self.bot_avatar)
        for record in await self.users.list_user_logins():
            login = await self.logins.login_by_id(record.id)
            if login is not None:
                await self.on_login(login)

    async def stop(self) -> None:
        await self.accounts.stop()

    async def on_login(self, login: Login) -> None:
        owner = login.record.mxid
        name = await self.profiles.owner_name(owner) if owner is not None else None
        await self.accounts.start_login(login, name)

    async def on_logout(self, login: Login) -> None:
        await self.accounts.stop_login(login)

    async def outside_portals(self, event: RoomEvent) -> None:
        """Events in rooms that are no portal: a real user inviting a ghost starts a chat."""
        if isinstance(event, StateEvent):
            await self.chats.handle_ghost_invite(event)


def build_direct(deps: PortalDeps, files: FileTransfer) -> DirectKind:
    """Build every part of direct chats; nothing runs until :meth:`DirectKind.start`."""
    repos, bot, config = deps.repos, deps.bot, deps.config
    accounts = SessionAccounts(
        snode=build_snode_client(deps.http, config.session),
        files=files,
        cursors=repos.cursors,
        poll_interval=config.session.poll_interval,
    )
    chats = DirectChats(
        portals=repos.portals,
        ghosts=deps.ghosts,
        accounts=accounts,
        logins=deps.logins,
        cursors=repos.cursors,
        rooms=deps.rooms,
        bot=bot,
        bot_mxid=config.bot_mxid,
        domain=config.homeserver.domain,
        command_prefix=config.bridge.command_prefix,
        no_login_text=deps.no_login_text,
    )
    inbound = DirectInbound(
        chats=chats,
        ghosts=deps.ghosts,
        messages=repos.messages,
        cursors=repos.cursors,
        own_ids=deps.own_ids,
        portal_lock=deps.portal_lock,
        bot=bot,
    )
    # Transient failures wait (RetryLater), permanent ones are parked (docs/architecture.md §4.7).
    accounts.bind_handler(DirectDelivery(inbound.handle, accounts, deps.dead_letters))
    outbound = DirectOutbound(
        accounts=accounts,
        messages=repos.messages,
        outbox=repos.outbox,
        portals=repos.portals,
        ghost_pattern=deps.ghost_pattern,
        download=media_download(bot),
        portal_lock=deps.portal_lock,
    )
    return DirectKind(
        accounts=accounts,
        chats=chats,
        inbound=inbound,
        outbound=outbound,
        profiles=SessionProfiles(bot, repos.kv, media_download(bot)),
        bot_login=deps.bot_login,
        bot_name=config.appservice.bot_displayname,
        bot_avatar=config.appservice.bot_avatar,
        logins=deps.logins,
        users=repos.users,
    )
