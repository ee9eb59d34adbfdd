"""Composition root: builds every part of the bridge and owns the start/stop order."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import mautrix
from mautrix.types import ContentURI, MessageEvent, UserID

import bridge
from bridge import logredact
from bridge.app_made_ids import MadeIdsWiring, build_made_ids
from bridge.app_reminders import Reminders, build_reminders
from bridge.commands.account import PHRASE_PROMPT, account_commands, finish_phrase_login
from bridge.commands.admin import AdminDeps, admin_commands
from bridge.commands.bot import BotController
from bridge.commands.builtin import builtin_commands
from bridge.commands.contacts import ContactsDeps, export_contacts
from bridge.commands.deadletters import dead_letter_commands
from bridge.commands.direct import direct_commands
from bridge.commands.group_admin import group_admin_commands
from bridge.commands.group_create import group_create_commands
from bridge.commands.groups import group_commands
from bridge.commands.links import link_commands
from bridge.commands.migration import migration_commands
from bridge.commands.permissions import Level, level_for, no_login_refusal
from bridge.commands.portals import PortalCommandDeps, portal_commands
from bridge.commands.registry import CommandRegistry
from bridge.config import Config
from bridge.core.community.health import community_checks
from bridge.core.community.service import Communities, parse_community_key
from bridge.core.community.wiring import CommunityKind, admin_users, build_community
from bridge.core.convert.mentions import ghost_mxid_pattern
from bridge.core.counts_refresh import CountsRefresher
from bridge.core.direct.health import network_checks
from bridge.core.direct.legacy_groups import LegacyGroupNotices
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.direct.wiring import DirectKind, build_direct
from bridge.core.downloads import AllowedDownloads, GuardedFiles
from bridge.core.expiring import ExpiringMessages
from bridge.core.export import Exporter
from bridge.core.ghosts import GhostManager
from bridge.core.group.phone import AccountGroups
from bridge.core.group.wiring import GroupKind, build_group
from bridge.core.link_effects import LinkEffects
from bridge.core.links import LinkService, LinkSettings
from bridge.core.logins import Login, LoginManager
from bridge.core.moved import MigrationStatus
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import LinkedIds
from bridge.core.portal.deadletters import DeadLetters, payload_of
from bridge.core.portal.events import PortalEvents
from bridge.core.portal.health import Check, database_check, homeserver_check
from bridge.core.portal.inbox import MatrixInbox, describe_event
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
from bridge.db.records import (
    DeadLetterPath,
    DeadLetterRecord,
    OutboxRecord,
    PortalKind,
    PortalRecord,
)
from bridge.db.repos import Repositories
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.links import LinkRepo
from bridge.db.repos.stats import StatsRepo
from bridge.db.repos.users import UserRepo
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.send import send_notice
from bridge.matrix.startup import check_bot, ping_homeserver, wait_for_homeserver
from bridge.metrics_server import MetricsServer
from bridge.metrics_wiring import count_delivered, metrics_server, scrape_hook
from bridge.registration import ghost_user_regex
from bridge.session.files import DEFAULT_FILE_SERVER, FileServerClient
from bridge.session.netguard import NamedServers, guarded_session
from bridge.session.sogs.urls import CommunityServerRef
from bridge.stopping import StopSteps

if TYPE_CHECKING:
    from bridge.app_encryption import Encryption

log = logging.getLogger("bridge.app")

#: Each step of stopping gets this long, and all of them about STOP_BUDGET_S: well under the
#: 30 s a service manager waits after SIGTERM (docs/operations.md).
STOP_STEP_LIMIT_S = 10.0
STOP_BUDGET_S = 15.0

VERSION_TEXT = f"session-matrix-bridge {bridge.__version__} (mautrix-python {mautrix.__version__})"


class ListenFailed(Exception):
    """The appservice port could not be opened."""


class UserManagementRooms:
    """Management rooms as :class:`BotController` needs them, stored in the user table.

    One instance per bridge (``BridgeApp.management_rooms``), write-through: every Matrix
    message asks, so a room is read once per user. That a user has *no* room is remembered
    for :attr:`NO_ROOM_TTL_S` only, so a room made later is found (by the reminders and
    ``finalize``, which ask for admins' rooms, too)."""

    NO_ROOM_TTL_S = 60.0

    def __init__(self, users: UserRepo, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._users = users
        self._clock = clock
        self._known: dict[str, str] = {}
        self._missing: dict[str, float] = {}  # user → when they were found without a room

    async def get_management_room(self, mxid: str) -> str | None:
        if mxid in self._known:
            return self._known[mxid]
        since = self._missing.get(mxid)
        if since is not None and self._clock() - since < self.NO_ROOM_TTL_S:
            return None
        user = await self._users.get_user(mxid)
        room = user.management_room if user else None
        self._remember(mxid, room)
        return room

    async def set_management_room(self, mxid: str, room_id: str | None) -> None:
        self._known.pop(mxid, None)  # unknown until the write is committed
        self._missing.pop(mxid, None)
        await self._users.set_management_room(mxid, room_id)
        self._remember(mxid, room_id)

    def _remember(self, mxid: str, room: str | None) -> None:
        if room is not None:
            self._missing.pop(mxid, None)
            self._known[mxid] = room
            return
        now = self._clock()
        if len(self._missing) >= 10_000:  # many users without a room: forget the expired
            self._missing = {
                k: t for k, t in self._missing.items() if now - t < self.NO_ROOM_TTL_S
            }
        self._missing[mxid] = now


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
            self.repos.inbox, self._route_event, self._route_ephemeral, park=self._park_event
        )
        self.dead_letters.register(DeadLetterPath.MATRIX, self._requeue_event)
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
        self.downloads = AllowedDownloads(
            self._download, [config.session.file_server], config.session.internal_hosts
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
        self._http: aiohttp.ClientSession | None = None
        self._files: FileServerClient | None = None
        # Downloads for Session users: their own client, which connects only where
        # self.downloads allows (no SSRF, bridge/core/downloads.py).
        self._download_http: aiohttp.ClientSession | None = None
        self._download_files: FileServerClient | None = None
        # Community servers are named by users (`bridge`, `open`): their client reaches
        # internal addresses only on hosts the operator listed (no SSRF, README, Security).
        self._community_http: aiohttp.ClientSession | None = None
        self._community: CommunityKind | None = None
        self._direct: DirectKind | None = None
        self._group: GroupKind | None = None
        self._kinds: list[ConversationKind] = []
        self._router: MatrixEventRouter | None = None
        self._notices: FailureNotices | None = None
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
        self._http = aiohttp.ClientSession()
        self._files = self._upload_files(self._http)
        self._download_http = guarded_session(self.downloads)
        self._download_files = FileServerClient(
            self._download_http, self.config.session.file_server
        )
        self._community_http = guarded_session(NamedServers(self.config.session.internal_hosts))
        self._build_kinds(self._http, self._files, bot_login)
        if self._link_effects is not None:
            await self._link_effects.load()
        # The homeserver's checks before the kinds start: their background work (resuming
        # portals, first polls) must not hold them up (docs/architecture.md §3.4).
        await ping_homeserver(intent, self.config.appservice.id, self.config.appservice.address)
        await self._set_bot_profile()
        await self.expiring.start()
        for kind in self._kinds:
            await kind.start()
        if self._made_ids is not None:  # their group clients: after the group kind's
            await self._made_ids.start()
        self._spawn(self.inbox.run, "matrix-inbox")
        self._spawn(self.readiness.watch_database, "database-watch")
        self.readiness.set_started(True)
        log.info("Bridge ready as %s", self.config.bot_mxid)

    async def _listen(self) -> None:
        hostname, port = self.config.appservice.hostname, self.config.appservice.port
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
        if self._http is not None:
            await steps.step("the HTTP client", self._http.close())
        if self._download_http is not None:
            await steps.step("the download client", self._download_http.close())
        if self._community_http is not None:
            await steps.step("the community client", self._community_http.close())
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

    async def _park_event(self, event: dict[str, object], error: str, tries: int) -> None:
        what = describe_event(event)
        await self.dead_letters.park(
            DeadLetterPath.MATRIX, what, {"event": event}, error, attempts=tries
        )
        if self._notices is not None:
            try:  # parked already: a notice that cannot be sent must not park it again
                await self._notices.on_event_parked(event)
            except Exception:
                log.warning("Could not tell the sender of %s that it failed", what, exc_info=True)

    async def _park_row(self, row: OutboxRecord, error: str, tries: int) -> None:
        what = f"outbox row {row.id} ({row.kind}) of Matrix event {row.matrix_event_id}"
        await self.dead_letters.park(
            DeadLetterPath.OUTBOX,
            what,
            {"outbox_id": row.id},
            error,
            attempts=tries,
            portal_id=row.portal_id,
        )

    async def _requeue_event(self, record: DeadLetterRecord) -> None:
        event = payload_of(record).get("event")
        if not isinstance(event, dict):
            raise ValueError("the parked item holds no Matrix event")
        await self.inbox.requeue(event, f"retry:{record.id}")

    async def _community_servers(self) -> list[CommunityServerRef]:
        """The servers of the bridged community rooms, each once."""
        servers: dict[CommunityServerRef, None] = {}  # a server is its URL and its key
        for portal in await self.repos.portals.list_active(PortalKind.COMMUNITY):
            server, _ = parse_community_key(portal.session_key)
            servers.setdefault(server)
        return list(servers)

    async def _community_server_keys(self) -> list[bytes]:
        return [server.pubkey for server in await self._community_servers()]

    def _may_relay(self, mxid: str) -> bool:
        return level_for(mxid, self.config.bridge.permissions) >= Level.RELAY

    def _no_login_text(self, mxid: str, what: str) -> str:
        level = level_for(mxid, self.config.bridge.permissions)
        return no_login_refusal(level, what, self.config.bot_mxid)

    async def _status(self) -> list[Check]:
        """The admin's ``status``: the homeserver, the database, then the Session side."""

        async def ours() -> list[Check]:
            intent, address = self.appservice.intent, self.config.homeserver.address
            return [await homeserver_check(intent, address), await database_check(self.db)]

        groups = [ours()]  # every group is bounded in time; they run side by side
        if self._community is not None:
            groups.append(community_checks(self._community.communities, self.repos.portals))
        if self._direct is not None:
            direct = self._direct
            groups.append(network_checks(direct.accounts.snode, direct.bot_login.session_id))
        return [check for group in await asyncio.gather(*groups) for check in group]

    @property
    def communities(self) -> Communities | None:
        """The community servers the bridge reads (after :meth:`start`)."""
        return self._community.communities if self._community is not None else None

    def _upload_files(self, http: aiohttp.ClientSession) -> FileServerClient:
        """The file server the bridge uploads to; its URLs carry #p=<Ed25519 key> unless it
        is the default server (docs/session-protocol.md §7.1)."""
        session = self.config.session
        key = session.file_server_ed25519_pubkey or None
        files = FileServerClient(http, session.file_server, server_pubkey=key)
        if files.server_pubkey is None and files.base_url != DEFAULT_FILE_SERVER:
            log.warning(
                "session.file_server_ed25519_pubkey is empty: Android does not fetch the files "
                "and avatars the bridge uploads to %s without it",
                files.base_url,
            )
        return files

    async def _download(self, url: str) -> bytes:
        if self._download_files is None:
            raise RuntimeError("download before start")
        return await self._download_files.download(url)

    def _build_kinds(
        self, http: aiohttp.ClientSession, files: FileServerClient, bot_login: Login
    ) -> None:
        """The conversation kinds, the portal machinery shared by them, and the router."""
        bot = self.appservice.intent
        rooms = PortalRooms(bot, self.repos.portals, self.config.bot_mxid)
        rooms.allow_encrypted = self.config.encryption.allow
        rooms.encrypt_new = self.config.encryption.default
        rooms.require_encrypted = self.config.encryption.require
        deps = PortalDeps(
            config=self.config,
            http=http,
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
            community_http=self._community_http,
            no_login_text=self._no_login_text,
            dead_letters=self.dead_letters,
            supervisor=self.supervisor,
        )
        # Received attachments name any URL: they are fetched through the allow-list.
        direct = self._direct = build_direct(
            deps, GuardedFiles(files, self.downloads), renew=files.extend
        )
        # Community posts take their sent timestamps from the clock of the direct chats'
        # storage client, which every identity shares (docs/session-protocol.md §2.11).
        sent_clock = direct.accounts.snode.sent_clock
        community = self._community = build_community(deps, sent_clock)
        # Group clients ride on the identities' 1:1 clients, which the direct kind runs
        # (started before the group kind: the order of ``_kinds``).
        group = self._group = build_group(
            deps, direct.accounts.snode, lambda sid: (direct.accounts.get(sid) or (None, None))[1]
        )
        direct.accounts.before_start(group.before_client_start)  # subscribed before polling
        if (configs := direct.accounts.configs) is not None:  # the phone's groups and reads
            group.bind_account(account_groups(configs))
            configs.on_groups_changed(group.phone.on_groups_changed)
        direct.inbound.on_legacy_group = LegacyGroupNotices(
            bot=bot,
            logins=self.logins,
            bot_session_id=bot_login.session_id,
            admins=admin_users(self.config),
            users=self.repos.users,
        ).on_invite
        self._kinds = [community, direct, group]
        self._made_ids = build_made_ids(
            config=self.config,
            bot=bot,
            users=self.repos.users,
            links=LinkRepo(self.db),
            kv=self.repos.kv,
            portals=self.repos.portals,
            rooms=rooms,
            logins=self.logins,
            snode=direct.accounts.snode,
            files=files,
            community_actors=community.outbound.actors,
            group_actors=group.outbound.actors,
            group_clients=group.clients,
            group_members=group.members,
            session_client=lambda sid: (direct.accounts.get(sid) or (None, None))[1],
            linked=self.linked,
        )
        for command in self._made_ids.commands:
            self.registry.register(command)

        notices = self._notices = FailureNotices(portals=self.repos.portals, bot=bot)
        sender = OutboxSender(
            self.repos.outbox,
            {row_kind: deliver for k in self._kinds for row_kind, deliver in k.deliverers.items()},
            on_failed=notices.on_outbox_failed,
            on_delayed=notices.on_outbox_delayed,
            on_recovered=notices.on_outbox_recovered,
            # Matrix → Session events, counted under the kind that delivers the row.
            on_delivered=count_delivered(
                {row_kind: k.portal_kind.value for k in self._kinds for row_kind in k.deliverers}
            ),
            park=self._park_row,
            delay_notice_after=self.config.bridge.outage_notice_after,
        )

        async def requeue_row(record: DeadLetterRecord) -> None:
            outbox_id = int(payload_of(record)["outbox_id"])
            if not await self.repos.outbox.requeue_failed(outbox_id):
                raise ValueError(f"outbox row {outbox_id} is gone or no longer failed")
            sender.wake()

        self.dead_letters.register(DeadLetterPath.OUTBOX, requeue_row)
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
        self._register_portal_commands(rooms, community, direct)
        for command in group_commands(
            group.bot_invites,
            GroupRepo(self.db),
            self.repos.portals,
            self.logins,
            self.config.bridge.command_prefix,
            sync=group.sync,
        ):
            self.registry.register(command)
        for command in group_create_commands(group.creator) if group.creator else []:
            self.registry.register(command)
        if group.admin is not None:  # invite, promote, destroy-group in group portals
            for command in group_admin_commands(group.admin, self.repos.portals):
                self.registry.register(command)
        self._build_router(portal_events)
        self._spawn(sender.run, "outbox")

    def _register_portal_commands(
        self, rooms: PortalRooms, community: CommunityKind, direct: DirectKind
    ) -> None:
        bot = self.appservice.intent
        deps = PortalCommandDeps(
            rooms=rooms,
            portals=self.repos.portals,
            communities=community.communities,
            community_portals=community.portals,
            bot=bot,
            is_ghost=lambda mxid: bool(self.ghost_pattern.match(mxid)),
            intent_for=lambda mxid: bot.user(UserID(mxid)),
            # A group portal unbridged (or finalized): its group is no longer polled.
            on_unbridged={PortalKind.GROUP: self._group.unbridged} if self._group else {},
        )
        prefix = self.config.bridge.command_prefix
        for command in [
            *portal_commands(deps),
            *direct_commands(direct.chats, self.logins, direct.accounts, prefix),
            *link_commands(self._link_service(direct), prefix),
            *migration_commands(
                self._migration_status(),
                Exporter(
                    links=LinkRepo(self.db),
                    bot=bot,
                    ghost_names=self.ghosts.pill_names,
                    owners=self.own_ids.owners,
                    server_key_of=_community_server_key,
                ),
                self.repos.portals,
                export_contacts(self._contacts_deps(direct)),
            ),
            *self._reminders(deps, direct).commands,
        ]:
            self.registry.register(command)
        # Joining a portal's alias (#session_<room>.<server>.<key>) reaches it (README).
        self.appservice.bind_query_alias(community.portals.query_alias)

    def _contacts_deps(self, direct: DirectKind) -> ContactsDeps:
        """`export contacts` (docs/migration.md §4)."""
        configs, own_ids = direct.accounts.configs, self.own_ids
        return ContactsDeps(
            logins=self.logins,
            configs_of=lambda sid: configs.get(sid) if configs is not None else None,
            owner_of=lambda sid: own_ids.owners([sid], None).get(sid.lower()),
            management_room=self.management_rooms.get_management_room,
            bot=self.appservice.intent,
        )

    def _reminders(self, deps: PortalCommandDeps, direct: DirectKind) -> Reminders:
        """Deadline reminders, `remind`, `finalize` (docs/migration.md §5, §6)."""
        assert self._community_http is not None
        found = self.migration_reminders = build_reminders(
            config=self.config,
            kv=self.repos.kv,
            status=self._migration_status(),
            portal_deps=deps,
            bot_identity=direct.bot_login.identity,
            sent_ms=direct.accounts.snode.sent_clock.next_ms,
            send_direct=bot_direct_sender(direct),
            admins=admin_users(self.config),
            logins=self.logins,
            community_http=self._community_http,
            management_room=self.management_rooms.get_management_room,
            is_linked=self.linked.is_linked,
            delete_made=self._made_ids.made.delete_all if self._made_ids is not None else None,
        )
        if self._group is not None:  # the bot posts group reminders itself
            found.announcers[PortalKind.GROUP] = self._group
        if self.config.migration.deadline:
            self._spawn(found.service.run, "migration-reminders")
        # Every portal counted hourly: state event, topic, weekly trend (docs/migration.md §3).
        counts = CountsRefresher(self._migration_status(), self.repos.portals)
        self._spawn(counts.run, "migration-counts")
        return found

    def _link_service(self, direct: DirectKind) -> LinkService:
        """`link`/`unlink`, fed also by the texts sent to the bot's Session ID (link codes)."""
        bot, migration = self.appservice.intent, self.config.migration

        async def notify(room_id: str, markdown: str) -> None:
            await send_notice(bot, room_id, markdown)

        settings = LinkSettings(
            bot_session_id=direct.bot_login.session_id,
            bot_mxid=self.config.bot_mxid,
            command_prefix=self.config.bridge.command_prefix,
            code_ttl_ms=int(migration.link_code_ttl * 1000),
            codes_per_hour=migration.link_codes_per_hour,
        )
        repo = LinkRepo(self.db)
        effects = self._link_effects = LinkEffects(
            links=repo,
            portals=self.repos.portals,
            ghosts=self.ghosts,
            linked=self.linked,
            bot=bot,
            server_key_of=lambda portal: parse_community_key(portal.session_key)[0].pubkey,
        )
        service = LinkService(
            repo,
            settings,
            notify=notify,
            on_linked=effects.on_linked,
            on_unlinked=effects.on_unlinked,
        )
        direct.chats.set_bot_message_hook(service.on_bot_message)
        return service

    def _migration_status(self) -> MigrationStatus:
        """`who` and `migration` (docs/migration.md §3)."""
        return MigrationStatus(
            links=LinkRepo(self.db),
            portals=self.repos.portals,
            ghosts=self.ghosts,
            linked=self.linked,
            bot=self.appservice.intent,
            server_key_of=_community_server_key,
            deadline=self.config.migration.deadline,
            kv=self.repos.kv,
            topic_counts=self.config.migration.topic_counts,
        )

    def _build_router(self, portal_events: PortalEvents) -> None:
        bot = BotController(
            intent=self.appservice.intent,
            rooms=self.management_rooms,
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
            # Member names and memberships as the intents read them (router docstring).
            on_state=self.appservice.state_store.update_state,
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


def account_groups(configs: LoginConfigs) -> AccountGroups:
    """The user-config calls the group kind needs (docs/user-configs.md)."""

    async def joined(
        sid: str, gid: str, name: str | None, seed: bytes | None, auth: bytes | None
    ) -> bool:
        return await configs.group_joined(sid, gid, name=name, secret_key=seed, auth_data=auth)

    return AccountGroups(configs.groups_joined, joined, configs.mark_read)


def bot_direct_sender(direct: DirectKind) -> Callable[[str, str], Awaitable[None]]:
    """A 1:1 text from the bot's Session identity (`remind`, docs/migration.md §5)."""

    async def send(peer: str, text: str) -> None:
        found = direct.accounts.get(direct.bot_login.session_id)
        if found is None:
            raise RuntimeError("the bot's Session identity is not running")
        await found[1].send_text(peer, text)

    return send


def _community_server_key(portal: PortalRecord) -> bytes | None:
    if portal.kind is not PortalKind.COMMUNITY:
        return None
    return parse_community_key(portal.session_key)[0].pubkey


async def run_until_stopped(app: BridgeApp, stop: asyncio.Event) -> None:
    """Start ``app``, wait for ``stop``, then stop it."""
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


def default_config_path() -> Path:
    return Path("config.yaml")
