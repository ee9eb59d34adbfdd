"""Composition root: builds every part of the bridge and owns the start/stop order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import mautrix
from mautrix.types import ContentURI

import bridge
from bridge.commands.account import PHRASE_PROMPT, account_commands, finish_phrase_login
from bridge.commands.bot import BotController
from bridge.commands.builtin import builtin_commands
from bridge.commands.registry import CommandRegistry
from bridge.config import Config
from bridge.core.logins import LoginManager
from bridge.core.matrix_inbox import MatrixInbox
from bridge.core.prompts import Prompts
from bridge.core.router import MatrixEventRouter
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.inbox import MatrixInboxRepo
from bridge.db.repos.users import UserRepo
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.startup import check_bot, ping_homeserver, wait_for_homeserver
from bridge.registration import ghost_user_regex

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
    """The running bridge: database, appservice endpoint, Matrix inbox and bot."""

    def __init__(self, config: Config, *, homeserver_timeout: float = 60.0) -> None:
        self.config = config
        self.homeserver_timeout = homeserver_timeout
        self.db = Database.from_url(config.database.url)
        self.users = UserRepo(self.db)
        self.inbox_repo = MatrixInboxRepo(self.db)
        self.logins = LoginManager(
            self.users, SeedVault(parse_secrets_key(config.bridge.secrets_key))
        )
        self.prompts = Prompts()
        self.registry = CommandRegistry()
        prefix = config.bridge.command_prefix
        for command in [
            *builtin_commands(lambda: self.registry, prefix, VERSION_TEXT),
            *account_commands(self.logins, self.prompts, prefix),
        ]:
            self.registry.register(command)
        self.inbox = MatrixInbox(self.inbox_repo, self._handle_event, self._handle_ephemeral)
        self.appservice = BridgeAppService(
            server=config.homeserver.address,
            domain=config.homeserver.domain,
            as_token=config.appservice.as_token,
            hs_token=config.appservice.hs_token,
            bot_localpart=config.appservice.bot_username,
            registration_id=config.appservice.id,
            sink=self.inbox,
            max_body_size=config.appservice.max_body_size,
            verify_ssl=config.homeserver.verify_ssl,
        )
        self._router: MatrixEventRouter | None = None
        self._listening = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Migrate, listen, self-test against the homeserver, then become ready."""
        await migrate.upgrade_to_head(self.config.database.url)
        await self.inbox_repo.prune(self.config.appservice.transaction_retention_days)
        try:
            await self.appservice.start(
                self.config.appservice.hostname, self.config.appservice.port
            )
        except OSError as e:
            where = f"{self.config.appservice.hostname}:{self.config.appservice.port}"
            raise ListenFailed(f"cannot listen on {where}: {e}") from e
        self._listening = True
        intent = self.appservice.intent
        await wait_for_homeserver(intent, self.config.homeserver.address, self.homeserver_timeout)
        await check_bot(intent)
        bot_login = await self.logins.bot_login()
        log.info("The bot's Session ID is %s", bot_login.session_id)
        self._build_router()
        self._tasks.append(asyncio.create_task(self.inbox.run(), name="matrix-inbox"))
        await ping_homeserver(intent, self.config.appservice.id, self.config.appservice.address)
        await self._set_bot_profile()
        self.appservice.ready = True
        log.info("Bridge ready as %s", self.config.bot_mxid)

    async def stop(self) -> None:
        self.appservice.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listening:
            await self.appservice.stop()
            self._listening = False
        await self.db.close()

    def _build_router(self) -> None:
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
        self._router = MatrixEventRouter(
            bot_mxid=self.config.bot_mxid,
            ghost_regex=ghost_user_regex(
                self.config.bridge.username_template, self.config.homeserver.domain
            ),
            on_bot_invite=bot.handle_invite,
            on_bot_left=bot.handle_bot_left,
            on_message=bot.handle_message,
        )

    async def _handle_event(self, raw: dict[str, object]) -> None:
        if self._router is None:
            raise RuntimeError("event before the router was built")
        await self._router.handle(raw)

    async def _handle_ephemeral(self, raw: dict[str, object]) -> None:
        log.debug("Ephemeral %s ignored (no portals yet)", raw.get("type"))

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
