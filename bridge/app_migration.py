"""Wiring of the migration tools (docs/migration.md), kept out of bridge/app.py: the identity
links and what reads them (bridge/app_links.py), the deadline reminders and ``finalize``
(bridge/app_reminders.py) and the hourly member counts, over the app's shared pieces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from mautrix.appservice import IntentAPI

from bridge.app_links import LinkWiring, build_links, migration_status
from bridge.app_reminders import Reminders, bot_direct_sender, build_reminders
from bridge.commands.portals import PortalCommandDeps
from bridge.config import Config
from bridge.core.counts_refresh import CountsRefresher
from bridge.core.direct.accounts import SessionAccounts
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.ghosts import GhostManager
from bridge.core.logins import Login, LoginManager
from bridge.core.moved import MigrationStatus
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import LinkedIds
from bridge.core.reminders import SessionAnnouncer
from bridge.db.engine import Database
from bridge.db.records import PortalKind
from bridge.db.repos import Repositories
from bridge.db.repos.links import LinkRepo

__all__ = ["MigrationWiring"]


@dataclass
class MigrationWiring:
    """The app's pieces the migration tools read; each method builds one of them."""

    config: Config
    db: Database
    repos: Repositories
    ghosts: GhostManager
    linked: LinkedIds
    own_ids: OwnSessionIds
    bot: IntentAPI
    logins: LoginManager
    management_room: Callable[[str], Awaitable[str | None]]

    def status(self) -> MigrationStatus:
        """`who` and `migration` (docs/migration.md §3)."""
        return migration_status(
            config=self.config,
            links=LinkRepo(self.db),
            portals=self.repos.portals,
            ghosts=self.ghosts,
            linked=self.linked,
            bot=self.bot,
            kv=self.repos.kv,
        )

    def links(self, bot_session_id: str, configs: LoginConfigs | None) -> LinkWiring:
        """`link`/`unlink`, `who`, `export`, `export contacts`, `migration`."""
        return build_links(
            config=self.config,
            links=LinkRepo(self.db),
            portals=self.repos.portals,
            ghosts=self.ghosts,
            linked=self.linked,
            own_ids=self.own_ids,
            bot=self.bot,
            bot_session_id=bot_session_id,
            logins=self.logins,
            configs=configs,
            management_room=self.management_room,
            status=self.status(),
        )

    def reminders(
        self,
        *,
        portal_deps: PortalCommandDeps,
        accounts: SessionAccounts,
        bot_login: Login,
        admins: list[str],
        community_http: aiohttp.ClientSession,
        delete_made: Callable[[], Awaitable[list[str]]] | None,
        group: SessionAnnouncer | None,
    ) -> Reminders:
        """Deadline reminders, `remind`, `finalize` (docs/migration.md §5, §6); the bot posts
        group reminders itself (``group``)."""
        found = build_reminders(
            config=self.config,
            kv=self.repos.kv,
            status=self.status(),
            portal_deps=portal_deps,
            bot_identity=bot_login.identity,
            sent_ms=accounts.snode.sent_clock.next_ms,
            send_direct=bot_direct_sender(accounts, bot_login.session_id),
            admins=admins,
            logins=self.logins,
            community_http=community_http,
            management_room=self.management_room,
            is_linked=self.linked.is_linked,
            delete_made=delete_made,
        )
        if group is not None:
            found.announcers[PortalKind.GROUP] = group
        return found

    def counts(self) -> CountsRefresher:
        """Every portal counted hourly: state event, topic, weekly trend (§3)."""
        return CountsRefresher(self.status(), self.repos.portals)
