"""Wiring of the deadline reminders, ``remind`` and ``finalize`` (docs/migration.md §5, §6),
kept out of bridge/app.py: :func:`build_reminders` gives the commands and the service whose
:meth:`~bridge.core.reminders.ReminderService.run` the app supervises."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from mautrix.appservice import IntentAPI

from bridge.commands.portals import PortalCommandDeps, end_portal
from bridge.commands.registry import Command
from bridge.commands.reminders import ReminderCommandDeps, reminder_commands
from bridge.config import Config
from bridge.core.community.service import parse_community_key
from bridge.core.direct.accounts import SessionAccounts
from bridge.core.finalize import Finalizer
from bridge.core.logins import LoginManager
from bridge.core.moved import MigrationStatus
from bridge.core.remind import MemberReminder
from bridge.core.reminders import ReminderService, ReminderSettings, SessionAnnouncer
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.matrix.send import send_notice
from bridge.session.keys import Identity
from bridge.session.messages.model import Profile, VisibleMessage
from bridge.session.sogs.client import CommunityClient

log = logging.getLogger("bridge.app_reminders")


@dataclass
class Reminders:
    commands: list[Command]
    service: ReminderService
    finalizer: Finalizer
    # Session-side announcers by portal kind (the app adds the group kind).
    announcers: dict[PortalKind, SessionAnnouncer]


class CommunityBotAnnouncer:
    """The bot posts a text in a community portal's room, like a relayed message (the poller
    skips the bot's own posts); group portals get theirs from the group kind."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        identity: Identity,
        name: str,
        sent_ms: Callable[[], int],
    ) -> None:
        self._http = http
        self._identity = identity
        self._name = name
        self._sent_ms = sent_ms
        self._clients: dict[str, CommunityClient] = {}

    async def announce(self, portal: PortalRecord, text: str) -> None:
        server, token = parse_community_key(portal.session_key)
        client = self._clients.get(server.base_url)
        if client is None:
            client = self._clients[server.base_url] = CommunityClient(
                self._http, self._identity, server
            )
        message = VisibleMessage(
            body=text,
            profile=Profile(display_name=self._name or None),
            sig_timestamp=self._sent_ms(),
            blocks_community_message_requests=True,
        )
        await client.post(token, message)


def reminder_settings(config: Config) -> ReminderSettings:
    m = config.migration
    return ReminderSettings(
        deadline=m.deadline,
        days=tuple(m.reminder_days),
        grace_days=m.grace_days,
        template_session=m.reminder_template_session,
        template_matrix=m.reminder_template_matrix,
        howto=m.reminder_howto,
    )


def build_reminders(
    *,
    config: Config,
    kv: KVRepo,
    status: MigrationStatus,
    portal_deps: PortalCommandDeps,
    bot_identity: Identity,
    sent_ms: Callable[[], int],
    send_direct: Callable[[str, str], Awaitable[None]],
    admins: list[str],
    logins: LoginManager,
    community_http: aiohttp.ClientSession,
    management_room: Callable[[str], Awaitable[str | None]],
    is_linked: Callable[[str], bool],
    delete_made: Callable[[], Awaitable[list[str]]] | None = None,
) -> Reminders:
    bot: IntentAPI = portal_deps.bot
    settings = reminder_settings(config)
    announcers: dict[PortalKind, SessionAnnouncer] = {
        PortalKind.COMMUNITY: CommunityBotAnnouncer(
            community_http,
            bot_identity,
            config.appservice.bot_displayname,
            sent_ms,
        )
    }

    async def notify(room_id: str, markdown: str) -> None:
        await send_notice(bot, room_id, markdown)

    async def tell_admins(markdown: str) -> None:
        for admin in admins:
            room = await management_room(admin)
            if room is None:
                log.warning("Bridge admin %s has no management room to be told", admin)
                continue
            await send_notice(bot, room, markdown)

    async def delete_secrets() -> list[str]:
        removed = []
        for login in logins.cached_logins():
            owner = str(login.record.mxid)
            for sid in await logins.logout(owner, login.session_id):
                removed.append(f"{owner}: the login of `{sid}`")
        return removed

    async def end(portal: PortalRecord) -> None:
        await end_portal(portal_deps, portal)

    finalizer = Finalizer(
        kv=kv,
        portals=portal_deps.portals,
        announcers=announcers,
        notify=notify,
        end_portal=end,
        delete_secrets=delete_secrets if config.migration.delete_secrets_after else None,
        delete_made=delete_made if config.migration.delete_made_identities_after else None,
        tell_admins=tell_admins,
    )

    async def past_grace() -> None:
        await finalizer.everything()

    service = ReminderService(
        settings=settings,
        kv=kv,
        portals=portal_deps.portals,
        status=status,
        announcers=announcers,
        notify=notify,
        on_past_grace=past_grace,
    )

    reminder = MemberReminder(
        settings=settings,
        kv=kv,
        status=status,
        is_linked=is_linked,
        send=send_direct,
        bot_session_id=bot_identity.session_id.value,
    )
    commands = reminder_commands(
        ReminderCommandDeps(
            portals=portal_deps.portals,
            flags=service.flags,
            reminder=reminder,
            finalizer=finalizer,
            is_room_admin=portal_deps.rooms.is_room_admin,
            announcers=announcers,  # the app adds the group kind's to this same dict
        )
    )
    return Reminders(commands, service, finalizer, announcers)


def bot_direct_sender(
    accounts: SessionAccounts, bot_session_id: str
) -> Callable[[str, str], Awaitable[None]]:
    """A 1:1 text from the bot's Session identity (`remind`, docs/migration.md §5)."""

    async def send(peer: str, text: str) -> None:
        found = accounts.get(bot_session_id)
        if found is None:
            raise RuntimeError("the bot's Session identity is not running")
        await found[1].send_text(peer, text)

    return send
