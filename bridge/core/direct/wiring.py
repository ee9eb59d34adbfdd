"""Builds the direct-chat kind: the running Session accounts, their portals, both directions.

:func:`build_direct` is called once by :mod:`bridge.app`; the :class:`DirectKind` it returns
is what the rest of the bridge needs: the Matrix-side handler, the outbox deliverer, the
login hooks, the hook for events outside portals (a user inviting a ghost), and start/stop of
the Session clients (the bot's and every stored login's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from mautrix.types import StateEvent

from bridge.core.direct.accounts import SessionAccounts, build_snode_client
from bridge.core.direct.chats import DirectChats
from bridge.core.direct.delivery import DirectDelivery
from bridge.core.direct.inbound import DirectInbound
from bridge.core.direct.outbound import DM_KIND, DirectOutbound
from bridge.core.direct.profiles import Renew, SessionProfiles
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.events import PortalHandler
from bridge.core.portal.kind import PortalDeps
from bridge.core.portal.outbox import Deliver
from bridge.core.portal.router import RoomEvent
from bridge.db.records import PortalKind
from bridge.db.repos.users import UserRepo
from bridge.matrix.reads import media_download
from bridge.session.client import SessionClient
from bridge.session.dm_media import FileTransfer
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.core.direct.wiring")

#: Owners' names read from the homeserver at a time while the logins start (in the background).
NAME_READS_AT_ONCE = 8
#: Seconds between checks that the bot's picture is not about to expire on the file server.
AVATAR_CHECK_INTERVAL_S = 6 * 3600.0


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
    _naming: asyncio.Task[None] | None = field(default=None, repr=False)
    _avatar: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def handler(self) -> PortalHandler:
        return self.outbound

    @property
    def deliverers(self) -> Mapping[str, Deliver]:
        return {DM_KIND: self.outbound.deliver}

    async def start(self) -> None:
        """Start the bot's Session client (with its name and picture) and every stored
        login's. The logins' clients start at once; their owners' Matrix names are read in
        the background and shown from then on, so readiness waits on no request per login
        (docs/architecture.md §3.4)."""
        profile = await self.profiles.bot_profile(self.bot_name, self.bot_avatar)
        bot = await self.accounts.start_bot(self.bot_login.identity, profile)
        await self.profiles.refresh_bot_avatar(bot, self.bot_avatar)
        self._avatar = asyncio.create_task(self._keep_bot_avatar(bot), name="bot-avatar")
        logins: list[Login] = []
        for record in await self.users.list_user_logins():
            login = await self.logins.login_by_id(record.id)
            if login is not None:
                await self.accounts.start_login(login)
                logins.append(login)
        if self.accounts.configs is not None:
            return  # a login's profile is its UserProfile config, never its Matrix name
        self._naming = asyncio.create_task(self._show_owner_names(logins), name="login-names")

    async def _show_owner_names(self, logins: list[Login]) -> None:
        """Each started login shows its owner's Matrix name (a few reads at a time)."""
        gate = asyncio.Semaphore(NAME_READS_AT_ONCE)

        async def one(login: Login) -> None:
            owner, running = login.record.mxid, self.accounts.get(login.session_id)
            if owner is None or running is None:
                return
            async with gate:
                name = await self.profiles.owner_name(owner)
            await self.profiles.update_name(running[1], name)

        results = await asyncio.gather(*(one(login) for login in logins), return_exceptions=True)
        for error in (r for r in results if isinstance(r, Exception)):
            log.warning("Could not show a login's owner name: %s", error)

    async def _keep_bot_avatar(self, bot: SessionClient) -> None:
        """Renew the bot's picture on the file server before it expires, however long the
        bridge runs (``SessionProfiles.keep_bot_avatar``)."""
        while True:
            await asyncio.sleep(AVATAR_CHECK_INTERVAL_S)
            try:
                await self.profiles.keep_bot_avatar(bot, self.bot_avatar)
            except Exception:
                log.exception("Keeping the bot's Session picture failed; trying again later")

    async def stop(self) -> None:
        if self._avatar is not None:
            await cancel_and_wait(self._avatar)
            self._avatar = None
        if self._naming is not None:
            await cancel_and_wait(self._naming)
            self._naming = None
        await self.accounts.stop()

    async def on_login(self, login: Login) -> None:
        owner = login.record.mxid
        name = None
        if owner is not None and self.accounts.configs is None:
            name = await self.profiles.owner_name(owner)
        await self.accounts.start_login(login, name)

    async def on_logout(self, login: Login) -> None:
        await self.accounts.stop_login(login)

    async def outside_portals(self, event: RoomEvent) -> None:
        """Events in rooms that are no portal: a real user inviting a ghost starts a chat."""
        if isinstance(event, StateEvent):
            await self.chats.handle_ghost_invite(event)


def build_direct(deps: PortalDeps, files: FileTransfer, renew: Renew | None = None) -> DirectKind:
    """Build every part of direct chats; nothing runs until :meth:`DirectKind.start`.
    ``renew`` extends a file's expiry on the file server (the bot's picture)."""
    repos, bot, config = deps.repos, deps.bot, deps.config
    accounts = SessionAccounts(
        snode=build_snode_client(deps.http, config.session),
        files=files,
        cursors=repos.cursors,
        poll_interval=config.session.poll_interval,
        kv=repos.kv,
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
        configs=accounts.configs,
        timers=accounts.timers,
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
        profiles=SessionProfiles(bot, repos.kv, media_download(bot), renew),
        bot_login=deps.bot_login,
        bot_name=config.appservice.bot_displayname,
        bot_avatar=config.appservice.bot_avatar,
        logins=deps.logins,
        users=repos.users,
    )
