"""Composition root: builds every part of the bridge and owns the start/stop order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import defaultdict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import mautrix
from mautrix.types import ContentURI, MessageEvent, UserID

import bridge
from bridge.app_direct import DirectBridge, build_direct
from bridge.commands.account import PHRASE_PROMPT, account_commands, finish_phrase_login
from bridge.commands.bot import BotController
from bridge.commands.builtin import builtin_commands
from bridge.commands.portals import PortalCommandDeps, portal_commands
from bridge.commands.registry import CommandRegistry
from bridge.config import Config
from bridge.core.communities import Communities, parse_community_key
from bridge.core.community_portal import build_community
from bridge.core.convert.mentions import ghost_mxid_pattern
from bridge.core.direct_outbound import DM_KIND
from bridge.core.downloads import AllowedDownloads
from bridge.core.ghosts import GhostManager
from bridge.core.logins import Login, LoginManager
from bridge.core.matrix_inbox import MatrixInbox
from bridge.core.outbox_sender import OutboxSender
from bridge.core.portal_events import PortalEvents
from bridge.core.portal_rooms import PortalRooms
from bridge.core.prompts import Prompts
from bridge.core.router import MatrixEventRouter
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import PortalKind
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.ghosts import GhostRepo
from bridge.db.repos.inbox import MatrixInboxRepo
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.startup import check_bot, ping_homeserver, wait_for_homeserver
from bridge.registration import ghost_user_regex
from bridge.session.files import FileServerClient
from bridge.session.sogs.urls import CommunityServerRef

log = logging.getLogger("bridge.app")

VERSION_TEXT = f"session-matrix-bridge {bridge.__version__} (mautrix-python {mautrix.__version__})"


class ListenFailed(Exception):
    """The appservice port could not be opened."""


class UserManagementRooms:
    """Management rooms as :class:`BotController` needs them, stored in the user table."""

    def __init__(self, users: UserRepo) -> None:
        self._users = users

    async def get_management_room(self, mxid: str) -> str | None:
        user = await self._users.get_user(mxid)
        return user.management_room if user else None

    async def set_management_room(self, mxid: str, room_id: str | None) -> None:
        await self._users.set_management_room(mxid, room_id)


class BridgeApp:
    """The running bridge: database, appservice endpoint, Matrix inbox, bot and portals."""

    def __init__(self, config: Config, *, homeserver_timeout: float = 60.0) -> None:
        self.config = config
        self.homeserver_timeout = homeserver_timeout
        self.db = Database.from_url(config.database.url)
        self.users = UserRepo(self.db)
        self.portals = PortalRepo(self.db)
        self.messages = MessageRepo(self.db)
        self.cursors = CursorRepo(self.db)
        self.outbox = OutboxRepo(self.db)
        self.inbox_repo = MatrixInboxRepo(self.db)
        self.logins = LoginManager(
            self.users,
            SeedVault(parse_secrets_key(config.bridge.secrets_key)),
            on_login=self._on_login,
            on_logout=self._on_logout,
        )
        self.prompts = Prompts()
        self.registry = CommandRegistry()
        prefix = config.bridge.command_prefix
        for command in [
            *builtin_commands(lambda: self.registry, prefix, VERSION_TEXT),
            *account_commands(self.logins, self.prompts, prefix, self._community_servers),
        ]:
            self.registry.register(command)
        self.inbox = MatrixInbox(self.inbox_repo, self._handle_event, self._handle_ephemeral)
        self.downloads = AllowedDownloads(self._download, [config.session.file_server])
        self.ghosts = GhostManager(
            repo=GhostRepo(self.db),
            intent_for=lambda mxid: self.appservice.intent.user(UserID(mxid)),
            username_template=config.bridge.username_template,
            displayname_template=config.bridge.displayname_template,
            domain=config.homeserver.domain,
            downloader=self.downloads,
        )
        self.appservice = BridgeAppService(
            server=config.homeserver.address,
            domain=config.homeserver.domain,
            as_token=config.appservice.as_token,
            hs_token=config.appservice.hs_token,
            bot_localpart=config.appservice.bot_username,
            registration_id=config.appservice.id,
            sink=self.inbox,
            query_user=self.ghosts.query_user,
            max_body_size=config.appservice.max_body_size,
            verify_ssl=config.homeserver.verify_ssl,
        )
        self.ghost_pattern = re.compile(
            ghost_user_regex(config.bridge.username_template, config.homeserver.domain)
        )
        # The converters read the Session id out of a ghost pill: they need its named group.
        self.ghost_mention_pattern = ghost_mxid_pattern(
            config.bridge.username_template, config.homeserver.domain
        )
        self._portal_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._http: aiohttp.ClientSession | None = None
        self._files: FileServerClient | None = None
        self._communities: Communities | None = None
        self._direct: DirectBridge | None = None
        self._router: MatrixEventRouter | None = None
        self._listening = False
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Migrate, listen, self-test against the homeserver, then become ready.

        If any step fails, what was already started (the listener, Session pollers, tasks) is
        stopped before the error propagates, so the port and the pollers are not left behind.
        """
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    async def _start(self) -> None:
        await migrate.upgrade_to_head(self.config.database.url)
        await self.inbox_repo.prune(self.config.appservice.transaction_retention_days)
        await self._listen()
        intent = self.appservice.intent
        await wait_for_homeserver(intent, self.config.homeserver.address, self.homeserver_timeout)
        await check_bot(intent)
        bot_login = await self.logins.bot_login()
        log.info("The bot's Session ID is %s", bot_login.session_id)
        await self.logins.load_all()
        self._http = aiohttp.ClientSession()
        self._files = FileServerClient(self._http, self.config.session.file_server)
        self._build_portals(bot_login)
        assert self._direct is not None
        appservice = self.config.appservice
        await self._direct.start(
            bot_login, appservice.bot_displayname, appservice.bot_avatar, self.logins, self.users
        )
        self._spawn(self.inbox.run(), "matrix-inbox")
        await ping_homeserver(intent, self.config.appservice.id, self.config.appservice.address)
        await self._set_bot_profile()
        self.appservice.ready = True
        log.info("Bridge ready as %s", self.config.bot_mxid)

    async def _listen(self) -> None:
        hostname, port = self.config.appservice.hostname, self.config.appservice.port
        try:
            await self.appservice.start(hostname, port)
        except OSError as e:
            raise ListenFailed(f"cannot listen on {hostname}:{port}: {e}") from e
        self._listening = True

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        self.appservice.ready = False
        if self._communities is not None:
            await self._communities.stop()
        if self._direct is not None:
            await self._direct.accounts.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._http is not None:
            await self._http.close()
        if self._listening:
            await self.appservice.stop()
            self._listening = False
        await self.db.close()

    async def _community_servers(self) -> list[CommunityServerRef]:
        """The servers of the bridged community rooms, each once."""
        servers: dict[str, CommunityServerRef] = {}
        for portal in await self.portals.list_active(PortalKind.COMMUNITY):
            server, _ = parse_community_key(portal.session_key)
            servers.setdefault(server.base_url, server)
        return list(servers.values())

    @property
    def communities(self) -> Communities | None:
        """The community servers the bridge reads (after :meth:`start`)."""
        return self._communities

    def portal_lock(self, portal_id: int) -> asyncio.Lock:
        """Held while a portal's Session traffic is handled, in either direction."""
        return self._portal_locks[portal_id]

    async def _download(self, url: str) -> bytes:
        if self._files is None:
            raise RuntimeError("download before start")
        return await self._files.download(url)

    def _build_portals(self, bot_login: Login) -> None:
        """The Session-facing services, the portal commands and the Matrix event router."""
        assert self._http is not None
        bot = self.appservice.intent
        community = build_community(
            http=self._http,
            bot=bot,
            bot_identity=bot_login.identity,
            ghosts=self.ghosts,
            logins=self.logins,
            portals=self.portals,
            messages=self.messages,
            cursors=self.cursors,
            outbox=self.outbox,
            kv=KVRepo(self.db),
            downloads=self.downloads,
            ghost_pattern=self.ghost_mention_pattern,
            relay_template=self.config.bridge.relay.message_template,
            portal_lock=self.portal_lock,
            poll_interval=self.config.session.community_poll_interval,
        )
        self._communities = community.communities
        outbound = community.outbound
        assert self._files is not None
        rooms = PortalRooms(bot, self.portals, self.config.bot_mxid)
        direct = self._direct = build_direct(
            config=self.config,
            http=self._http,
            files=self._files,
            bot=bot,
            rooms=rooms,
            portals=self.portals,
            messages=self.messages,
            cursors=self.cursors,
            outbox=self.outbox,
            kv=KVRepo(self.db),
            ghosts=self.ghosts,
            logins=self.logins,
            ghost_pattern=self.ghost_mention_pattern,
            portal_lock=self.portal_lock,
        )
        events: list[PortalEvents] = []
        sender = OutboxSender(
            self.outbox,
            {**community.deliverers, DM_KIND: direct.outbound.deliver},
            on_failed=lambda row, reason: events[0].on_outbox_failed(row, reason),
        )
        events.append(
            PortalEvents(
                portals=self.portals,
                bot=bot,
                handlers={PortalKind.COMMUNITY: outbound, PortalKind.DIRECT: direct.outbound},
                sender=sender,
                outside_portals=direct.outside_portals,
            )
        )
        deps = PortalCommandDeps(
            rooms=rooms,
            portals=self.portals,
            communities=self._communities,
            bot=bot,
            is_ghost=lambda mxid: bool(self.ghost_pattern.match(mxid)),
            intent_for=lambda mxid: bot.user(UserID(mxid)),
        )
        for command in [*portal_commands(deps), *direct.commands]:
            self.registry.register(command)
        self._build_router(events[0])
        self._spawn(sender.run(), "outbox")
        self._spawn(self._communities.start(), "communities-start")

    def _build_router(self, portal_events: PortalEvents) -> None:
        bot = BotController(
            intent=self.appservice.intent,
            rooms=UserManagementRooms(self.users),
            registry=self.registry,
            permissions=self.config.bridge.permissions,
            prefix=self.config.bridge.command_prefix,
            prompts=self.prompts,
            prompt_handlers={
                PHRASE_PROMPT: lambda evt, text: finish_phrase_login(self.logins, evt, text)
            },
        )

        async def on_message(event: MessageEvent) -> None:
            if not await bot.handle_message(event):
                await portal_events.handle_message(event)

        self._router = MatrixEventRouter(
            bot_mxid=self.config.bot_mxid,
            ghost_regex=self.ghost_pattern.pattern,
            on_bot_invite=bot.handle_invite,
            on_bot_left=bot.handle_bot_left,
            on_message=on_message,
            on_room_event=portal_events.handle_event,
        )

    async def _handle_event(self, raw: dict[str, object]) -> None:
        if self._router is None:
            raise RuntimeError("event before the router was built")
        await self._router.handle(raw)

    async def _handle_ephemeral(self, raw: dict[str, object]) -> None:
        if self._direct is not None:
            await self._direct.outbound.handle_ephemeral(raw)

    async def _on_login(self, login: Login) -> None:
        if self._direct is not None:
            await self._direct.on_login(login)

    async def _on_logout(self, login: Login) -> None:
        if self._direct is not None:
            await self._direct.on_logout(login)

    async def _set_bot_profile(self) -> None:
        intent = self.appservice.intent
        await intent.set_displayname(self.config.appservice.bot_displayname)
        if self.config.appservice.bot_avatar:
            await intent.set_avatar_url(ContentURI(self.config.appservice.bot_avatar))


async def run_until_stopped(app: BridgeApp, stop: asyncio.Event) -> None:
    """Start ``app``, wait for ``stop``, then stop it."""
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


def default_config_path() -> Path:
    return Path("config.yaml")
