"""Composition root: builds every part of the bridge and owns the start/stop order."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import mautrix
from mautrix.types import ContentURI, UserID

import bridge
from bridge import logredact
from bridge.app_failures import Parking, build_outbox, requeue_event, requeue_row
from bridge.app_kinds import Kinds, build_kinds, portal_rooms
from bridge.app_made_ids import MadeIdsWiring
from bridge.app_migration import MigrationWiring
from bridge.app_reminders import Reminders
from bridge.app_rooms import UserManagementRooms
from bridge.app_router import build_router
from bridge.app_session import OpenClients, SessionHttp, community_servers, status_checks
from bridge.commands.account import account_commands
from bridge.commands.admin import AdminDeps, admin_commands
from bridge.commands.builtin import builtin_commands
from bridge.commands.deadletters import dead_letter_commands
from bridge.commands.direct import direct_commands
from bridge.commands.permissions import Level, level_for, no_login_refusal
from bridge.commands.portals import PortalCommandDeps, portal_commands
from bridge.commands.registry import CommandRegistry
from bridge.config import Config
from bridge.core.community.service import Communities
from bridge.core.community.wiring import CommunityKind, admin_users
from bridge.core.convert.mentions import ghost_mxid_pattern
from bridge.core.direct.wiring import DirectKind
from bridge.core.downloads import AllowedDownloads
from bridge.core.expiring import ExpiringMessages
from bridge.core.ghosts import GhostManager
from bridge.core.group.wiring import GroupKind
from bridge.core.link_effects import LinkEffects
from bridge.core.logins import Login, LoginManager
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import LinkedIds
from bridge.core.portal.deadletters import DeadLetters
from bridge.core.portal.encryption_policy import EncryptionPolicy
from bridge.core.portal.events import PortalEvents
from bridge.core.portal.health import Check
from bridge.core.portal.inbox import MatrixInbox
from bridge.core.portal.kind import ConversationKind, PortalDeps, PortalLocks
from bridge.core.portal.notices import FailureNotices
from bridge.core.portal.outbox import OutboxSender
from bridge.core.portal.readiness import Readiness
from bridge.core.portal.rooms import PortalRooms
from bridge.core.portal.router import MatrixEventRouter
from bridge.core.prompts import Prompts
from bridge.core.secrets import SeedVault, parse_secrets_key
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import DeadLetterPath
from bridge.db.repos import Repositories
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.links import LinkRepo
from bridge.db.repos.stats import StatsRepo
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.startup import check_bot, ping_homeserver, wait_for_homeserver
from bridge.metrics_server import MetricsServer
from bridge.metrics_wiring import metrics_server, scrape_hook
from bridge.registration import ghost_user_regex
from bridge.session.sogs.urls import CommunityServerRef
from bridge.stopping import StopSteps

if TYPE_CHECKING:
    from bridge.app_encryption import Encryption

log = logging.getLogger("bridge.app")

#: Each step of stopping gets this long, and all of them about STOP_BUDGET_S: well under the
#: 30 s a service manager waits after SIGTERM (docs/operations.md).
STOP_STEP_LIMIT_S = 10.0
STOP_BUDGET_S = 15.0
#: Transactions read back at start, so that a gap left while the bridge was away is seen
#: (bridge/matrix/txn_gaps.py believes a gap after a run of CONSECUTIVE_NEEDED).
TXN_IDS_SEEDED = 32

VERSION_TEXT = f"session-matrix-bridge {bridge.__version__} (mautrix-python {mautrix.__version__})"


class ListenFailed(Exception):
    """The appservice port could not be opened."""


class BridgeApp:
    """The running bridge: database, appservice endpoint, Matrix inbox, bot and portals.

    Built in two steps. The constructor builds what needs no network: the repositories, the
    logins, the command registry, the Matrix inbox and the appservice endpoint. :meth:`start`
    migrates, listens, checks the homeserver, loads the bot's Session identity and then builds
    the conversation kinds (:meth:`_build_kinds`), the portal machinery and the router.
    """

    def __init__(self, config: Config, *, homeserver_timeout: float = 60.0) -> None:
        self.config = config
        self.homeserver_timeout = homeserver_timeout
        self.db = Database.from_url(config.database.url)
        self.repos = Repositories.create(self.db)
        # The one writer of management rooms; the bot, reminders and contacts read it.
        self.management_rooms = UserManagementRooms(self.repos.users)
        self.logins = LoginManager(
            self.repos.users,
            SeedVault(parse_secrets_key(config.bridge.secrets_key)),
            on_login=self._on_login,
            on_logout=self._on_logout,
        )
        self.prompts = Prompts()
        # The message showing a new recovery phrase, removed once saved or after a while.
        self.expiring = ExpiringMessages(
            repo=self.repos.expiring,
            intent=lambda: self.appservice.intent,
            ttl=config.bridge.phrase_message_timeout,
        )
        # Readiness: started, every supervised loop running, the database answering.
        self.readiness = Readiness(db=self.db, publish=self._publish_ready)
        self.supervisor = self.readiness.supervisor
        # Items that failed for good, and taking them back (docs/architecture.md §4.7).
        self.dead_letters = DeadLetters(self.repos.dead_letters)
        self._parking = Parking(self.dead_letters)
        self.registry = CommandRegistry()
        prefix = config.bridge.command_prefix
        admin = AdminDeps(self.repos.portals, self.repos.users, self._status)
        for command in [
            *builtin_commands(lambda: self.registry, prefix, VERSION_TEXT),
            *account_commands(
                self.logins, self.prompts, prefix, self.expiring, self._community_servers
            ),
            *admin_commands(admin),
            *dead_letter_commands(self.dead_letters),
        ]:
            self.registry.register(command)
        # Events and ephemeral events go to the router and the direct-chat kind, which exist
        # only after start(); the inbox calls these two methods, which delegate to them.
        self.inbox = MatrixInbox(
            self.repos.inbox,
            self._route_event,
            self._route_ephemeral,
            park=self._parking.park_event,
        )
        self.dead_letters.register(DeadLetterPath.MATRIX, requeue_event(self.inbox))
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
        # The HTTP clients toward Session, opened in start() (bridge/app_session.py).
        self._session_http = SessionHttp(config.session)
        self.downloads = AllowedDownloads(
            self._session_http.download,
            [config.session.file_server],
            config.session.internal_hosts,
        )
        appservice = self.appservice
        # Session IDs linked to Matrix accounts: pills, ghost names (docs/migration.md §2).
        self.linked = LinkedIds()
        # The logins' Session ids, blinded per bridged server: never ghosts, pills of their owners.
        self.own_ids = OwnSessionIds(self.logins, self._community_server_keys, self.linked)
        self.ghosts = GhostManager(
            repo=self.repos.ghosts,
            # The intents exist once the appservice has started; ghosts are used only after.
            intent_for=lambda mxid: appservice.intent.user(UserID(mxid)),
            username_template=config.bridge.username_template,
            displayname_template=config.bridge.displayname_template,
            domain=config.homeserver.domain,
            downloader=self.downloads,
            is_own=self.own_ids.is_own,
            moved=self.linked.is_moved,
            moved_suffix=config.migration.moved_suffix,
        )
        self.appservice.bind_query_user(self.ghosts.query_user)
        self.ghost_pattern = re.compile(
            ghost_user_regex(config.bridge.username_template, config.homeserver.domain)
        )
        self.portal_lock = PortalLocks()
        self._community: CommunityKind | None = None
        self._direct: DirectKind | None = None
        self._group: GroupKind | None = None
        self._kinds: list[ConversationKind] = []
        self._router: MatrixEventRouter | None = None
        self._outbox: OutboxSender | None = None
        self._listening = False
        self._metrics: MetricsServer | None = None
        self._link_effects: LinkEffects | None = None
        self._made_ids: MadeIdsWiring | None = None  # docs/migration.md §7
        # Deadline reminders and finalize (bridge/app_reminders.py), built in start().
        self.migration_reminders: Reminders | None = None
        # End-to-bridge encryption (bridge/app_encryption.py), only with encryption.allow.
        self._encryption: Encryption | None = None

    async def start(self) -> None:
        """Migrate, listen, self-test against the homeserver, then become ready.

        If any step fails, what was already started (the listener, Session pollers, tasks) is
        stopped before the error propagates, so the port and the pollers are not left behind.
        """
        try:
            await self._start()
        except BaseException:
            try:
                await self.stop()
            except Exception:
                log.exception("Stopping after the failed start failed too")
            raise

    async def _start(self) -> None:
        # Before anything logs: no secret in any log line (bridge/logredact.py).
        logredact.install(logredact.config_secrets(self.config))
        await migrate.upgrade_to_head(self.config.database.url)
        await self.repos.inbox.prune(self.config.appservice.transaction_retention_days)
        if self.config.encryption.allow:
            # Before the appservice makes any intent: their sends get encrypted (e2ee_sends).
            from bridge.app_encryption import Encryption  # needs python-olm (the e2be extra)

            ghosts = self.ghost_pattern.pattern
            self._encryption = await Encryption.open(self.config, self.appservice, ghosts)
        await self._listen()
        await self._listen_metrics()
        intent = self.appservice.intent
        await wait_for_homeserver(intent, self.config.homeserver.address, self.homeserver_timeout)
        await check_bot(intent)
        if self._encryption is not None:
            await self._encryption.start(self.appservice)
        bot_login = await self.logins.bot_login()
        log.info("The bot's Session ID is %s", bot_login.session_id)
        await self.logins.load_all()
        clients = self._session_http.start(self.downloads)
        self._build_kinds(clients, bot_login)
        if self._link_effects is not None:
            await self._link_effects.load()
        # The homeserver's checks before the kinds start: their background work (resuming
        # portals, first polls) must not hold them up (docs/architecture.md §3.4).
        await ping_homeserver(intent, self.config.appservice.id, self.config.appservice.address)
        await self._set_bot_profile()
        await self.expiring.start()
        await self._start_session_side()
        self._spawn(self.inbox.run, "matrix-inbox")
        self._spawn(self.readiness.watch_database, "database-watch")
        self.readiness.set_started(True)
        log.info("Bridge ready as %s", self.config.bot_mxid)

    async def _start_session_side(self) -> None:
        """Start the kinds and the bridge-made identities' group clients, then drain the
        outbox: its rows go out through those clients, and one tried before them would fail
        as "not running" and wait out a backoff after every restart (docs/architecture.md
        §3.4, step 8). The kinds were awaited anyway: this adds no wait on Session."""
        for kind in self._kinds:
            await kind.start()
        if self._made_ids is not None:  # their group clients: after the group kind's
            await self._made_ids.start()
        if self._outbox is not None:
            self._spawn(self._outbox.run, "outbox")

    async def _listen(self) -> None:
        hostname, port = self.config.appservice.hostname, self.config.appservice.port
        self.appservice.gaps.seed(await self.repos.transactions.latest_ids(TXN_IDS_SEEDED))
        try:
            await self.appservice.start(hostname, port)
        except OSError as e:
            raise ListenFailed(f"cannot listen on {hostname}:{port}: {e}") from e
        self._listening = True

    async def _listen_metrics(self) -> None:
        """The metrics endpoint on its own listener, if enabled (docs/operations.md §5.4)."""
        readiness = self.readiness
        refresh = scrape_hook(
            StatsRepo(self.db), lambda: readiness.ready, lambda: readiness.database_up
        )
        server = metrics_server(self.config.metrics, refresh)
        if server is None:
            return
        try:
            await server.start()
        except OSError as e:
            where = f"{server.host}:{server.port}"
            raise ListenFailed(f"cannot listen for metrics on {where}: {e}") from e
        self._metrics = server

    def _spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a long-running loop, restarted with backoff after a crash (readiness is off
        while it is down)."""
        self.supervisor.spawn(name, loop)

    def _publish_ready(self, ready: bool) -> None:
        self.appservice.ready = ready

    async def stop(self) -> None:
        """Stop everything, each step even if one before it failed or hung (a step's error
        is logged; a step past its time limit is cancelled, logged by name and left behind):
        first no new work and the loops cancelled, then the listener, the HTTP sessions and
        the database are always released (docs/architecture.md §4.7)."""
        steps = StopSteps(step_limit=STOP_STEP_LIMIT_S, budget=STOP_BUDGET_S)
        self.readiness.set_started(False)
        # The loops first (the Matrix inbox, the outbox, the pollers, their backoff sleeps):
        # nothing retries against a server that is down while the rest is released.
        await steps.step("the loops", self.supervisor.stop())
        await steps.step("the expiring messages", self.expiring.stop())
        for kind in self._kinds:
            await steps.step(f"the {kind.portal_kind} portals", kind.stop())
        await steps.step("the loops started while stopping", self.supervisor.stop())
        for what, close in self._session_http.closing():
            await steps.step(what, close())
        if self._listening:
            await steps.step("the listener", self.appservice.stop())
            self._listening = False
        if self._metrics is not None:
            await steps.step("the metrics listener", self._metrics.stop())
            self._metrics = None
        if self._encryption is not None:
            await steps.step("the encryption store", self._encryption.stop())
            self._encryption = None
        await steps.step("the database", self.db.close())

    async def _community_servers(self) -> list[CommunityServerRef]:
        return await community_servers(self.repos.portals)

    async def _community_server_keys(self) -> list[bytes]:
        return [server.pubkey for server in await self._community_servers()]

    def _may_relay(self, mxid: str) -> bool:
        return level_for(mxid, self.config.bridge.permissions) >= Level.RELAY

    def _no_login_text(self, mxid: str, what: str) -> str:
        level = level_for(mxid, self.config.bridge.permissions)
        return no_login_refusal(level, what, self.config.bot_mxid)

    async def _status(self) -> list[Check]:
        """The admin's ``status`` (bridge/app_session.py)."""
        direct = self._direct
        return await status_checks(
            intent=self.appservice.intent,
            homeserver=self.config.homeserver.address,
            db=self.db,
            portals=self.repos.portals,
            communities=self.communities,
            network=(direct.accounts.snode, direct.bot_login.session_id) if direct else None,
        )

    @property
    def communities(self) -> Communities | None:
        """The community servers the bridge reads (after :meth:`start`)."""
        return self._community.communities if self._community is not None else None

    def _build_kinds(self, clients: OpenClients, bot_login: Login) -> None:
        """The conversation kinds, the portal machinery shared by them, and the router."""
        bot, files = self.appservice.intent, clients.files
        rooms = portal_rooms(self.config, bot, self.repos.portals)
        deps = PortalDeps(
            config=self.config,
            http=clients.http,
            bot=bot,
            bot_login=bot_login,
            repos=self.repos,
            ghosts=self.ghosts,
            logins=self.logins,
            rooms=rooms,
            downloads=self.downloads,
            # The converters read the Session id out of a ghost pill: they need its group.
            ghost_pattern=ghost_mxid_pattern(
                self.config.bridge.username_template, self.config.homeserver.domain
            ),
            portal_lock=self.portal_lock,
            own_ids=self.own_ids,
            may_relay=self._may_relay,
            community_http=clients.community_http,
            no_login_text=self._no_login_text,
            dead_letters=self.dead_letters,
            supervisor=self.supervisor,
        )
        kinds = build_kinds(deps, files, admin_users(self.config))
        community, direct = kinds.community, kinds.direct
        self._community, self._direct, self._group = community, direct, kinds.group
        self._kinds = kinds.all
        self._made_ids = kinds.made_ids(
            config=self.config,
            bot=bot,
            repos=self.repos,
            links=LinkRepo(self.db),
            rooms=rooms,
            logins=self.logins,
            files=files,
            linked=self.linked,
        )
        for command in self._made_ids.commands:
            self.registry.register(command)

        notices = self._parking.notices = FailureNotices(portals=self.repos.portals, bot=bot)
        sender = build_outbox(
            self.repos.outbox,
            self._kinds,
            notices,
            self._parking.park_row,
            self.config.bridge.outage_notice_after,
        )
        self.dead_letters.register(DeadLetterPath.OUTBOX, requeue_row(self.repos.outbox, sender))
        portal_events = PortalEvents(
            portals=self.repos.portals,
            bot=bot,
            handlers={k.portal_kind: k.handler for k in self._kinds},
            sender=sender,
            notices=notices,
            may_use=self._may_relay,  # any permission level at all (relay is the lowest)
            outside_portals=direct.outside_portals,
            no_login_text=self._no_login_text,
        )
        # A made identity's Session profile follows its user's Matrix profile (§7).
        portal_events.member_watchers.append(self._made_ids.on_member)
        portal_events.encryption = EncryptionPolicy(rooms)  # allow/require in portals
        self._register_portal_commands(rooms, kinds)
        prefix = self.config.bridge.command_prefix
        for command in kinds.group_commands(
            GroupRepo(self.db), self.repos.portals, self.logins, prefix
        ):
            self.registry.register(command)
        self._router = build_router(
            config=self.config,
            bot=bot,
            rooms=self.management_rooms,
            registry=self.registry,
            prompts=self.prompts,
            logins=self.logins,
            portal_events=portal_events,
            ghost_regex=self.ghost_pattern.pattern,
            on_state=self.appservice.state_store.update_state,
        )
        self._outbox = sender  # drained once the Session clients run (_start)

    def _register_portal_commands(self, rooms: PortalRooms, kinds: Kinds) -> None:
        community, direct = kinds.community, kinds.direct
        deps = kinds.portal_command_deps(
            rooms,
            self.repos.portals,
            self.appservice.intent,
            is_ghost=lambda mxid: bool(self.ghost_pattern.match(mxid)),
        )
        prefix = self.config.bridge.command_prefix
        migration = self._migration()
        links = migration.links(direct.bot_login.session_id, direct.accounts.configs)
        self._link_effects = links.effects
        direct.chats.set_bot_message_hook(links.service.on_bot_message)  # link codes
        for command in [
            *portal_commands(deps),
            *direct_commands(direct.chats, self.logins, direct.accounts, prefix),
            *links.commands,
            *self._reminders(migration, deps, direct).commands,
        ]:
            self.registry.register(command)
        # Joining a portal's alias (#session_<room>.<server>.<key>) reaches it (README).
        self.appservice.bind_query_alias(community.portals.query_alias)

    def _reminders(
        self, migration: MigrationWiring, deps: PortalCommandDeps, direct: DirectKind
    ) -> Reminders:
        """Deadline reminders, `remind`, `finalize` (docs/migration.md §5, §6), and the
        hourly counts (§3): their loops run under the supervisor."""
        clients = self._session_http.open
        assert clients is not None
        found = self.migration_reminders = migration.reminders(
            portal_deps=deps,
            accounts=direct.accounts,
            bot_login=direct.bot_login,
            admins=admin_users(self.config),
            community_http=clients.community_http,
            delete_made=self._made_ids.made.delete_all if self._made_ids is not None else None,
            group=self._group,
        )
        if self.config.migration.deadline:
            self._spawn(found.service.run, "migration-reminders")
        self._spawn(migration.counts().run, "migration-counts")
        return found

    def _migration(self) -> MigrationWiring:
        """The migration tools' view of the app (bridge/app_migration.py)."""
        return MigrationWiring(
            config=self.config,
            db=self.db,
            repos=self.repos,
            ghosts=self.ghosts,
            linked=self.linked,
            own_ids=self.own_ids,
            bot=self.appservice.intent,
            logins=self.logins,
            management_room=self.management_rooms.get_management_room,
        )

    async def _route_event(self, raw: dict[str, object]) -> None:
        if self._router is None:
            raise RuntimeError("event before the router was built")
        if self._encryption is not None:
            plain = await self._encryption.plaintext(self.appservice.intent, dict(raw))
            if plain is None:
                return
            raw = plain
        await self._router.handle(raw)

    async def _route_ephemeral(self, raw: dict[str, object]) -> None:
        if self._direct is not None:
            await self._direct.outbound.handle_ephemeral(raw)
        if self._group is not None:
            await self._group.handle_ephemeral(raw)

    async def _on_login(self, login: Login) -> None:
        if self._direct is not None:
            await self._direct.on_login(login)
        if self._group is not None:
            await self._group.on_login(login)

    async def _on_logout(self, login: Login) -> None:
        if self._group is not None:
            await self._group.on_logout(login)
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
