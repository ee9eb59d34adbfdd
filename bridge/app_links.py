"""Wiring of the identity links and what reads them (docs/migration.md §2-§4), kept out of
bridge/app.py: `link`/`unlink` with the link codes sent to the bot's Session ID, their effects
on ghosts and pills, `who`/`migration`, `export` and `export contacts`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mautrix.appservice import IntentAPI

from bridge.commands.contacts import ContactsDeps, export_contacts
from bridge.commands.links import link_commands
from bridge.commands.migration import migration_commands
from bridge.commands.registry import Command
from bridge.config import Config
from bridge.core.community.service import parse_community_key
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.export import Exporter
from bridge.core.ghosts import GhostManager
from bridge.core.link_effects import LinkEffects
from bridge.core.links import LinkService, LinkSettings
from bridge.core.logins import LoginManager
from bridge.core.moved import MigrationStatus
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import LinkedIds
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import LinkRepo
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.send import send_notice

__all__ = ["LinkWiring", "build_links", "community_server_key", "migration_status"]


@dataclass
class LinkWiring:
    """The link service (its ``on_bot_message`` reads the codes sent to the bot's Session
    ID), its effects (loaded at start) and the commands: `link`, `who`, `export`, ..."""

    service: LinkService
    effects: LinkEffects
    commands: list[Command]


def community_server_key(portal: PortalRecord) -> bytes | None:
    """The key of a community portal's server (blinded ids are per server); None else."""
    if portal.kind is not PortalKind.COMMUNITY:
        return None
    return parse_community_key(portal.session_key)[0].pubkey


def migration_status(
    *,
    config: Config,
    links: LinkRepo,
    portals: PortalRepo,
    ghosts: GhostManager,
    linked: LinkedIds,
    bot: IntentAPI,
    kv: KVRepo,
) -> MigrationStatus:
    """`who` and `migration` (docs/migration.md §3)."""
    return MigrationStatus(
        links=links,
        portals=portals,
        ghosts=ghosts,
        linked=linked,
        bot=bot,
        server_key_of=community_server_key,
        deadline=config.migration.deadline,
        kv=kv,
        topic_counts=config.migration.topic_counts,
    )


def build_links(
    *,
    config: Config,
    links: LinkRepo,
    portals: PortalRepo,
    ghosts: GhostManager,
    linked: LinkedIds,
    own_ids: OwnSessionIds,
    bot: IntentAPI,
    bot_session_id: str,
    logins: LoginManager,
    configs: LoginConfigs | None,
    management_room: Callable[[str], Awaitable[str | None]],
    status: MigrationStatus,
) -> LinkWiring:
    """The link service with its effects, and the link and migration commands in the order
    the app registers them (`link`..., then `who`, `export`, `migration`)."""
    effects = LinkEffects(
        links=links,
        portals=portals,
        ghosts=ghosts,
        linked=linked,
        bot=bot,
        server_key_of=lambda portal: parse_community_key(portal.session_key)[0].pubkey,
    )
    service = _link_service(config, links, bot, bot_session_id, effects)
    exporter = Exporter(
        links=links,
        bot=bot,
        ghost_names=ghosts.pill_names,
        owners=own_ids.owners,
        server_key_of=community_server_key,
    )
    contacts = ContactsDeps(
        logins=logins,
        configs_of=lambda sid: configs.get(sid) if configs is not None else None,
        owner_of=lambda sid: own_ids.owners([sid], None).get(sid.lower()),
        management_room=management_room,
        bot=bot,
    )
    commands = [
        *link_commands(service, config.bridge.command_prefix),
        *migration_commands(status, exporter, portals, export_contacts(contacts)),
    ]
    return LinkWiring(service, effects, commands)


def _link_service(
    config: Config, links: LinkRepo, bot: IntentAPI, bot_session_id: str, effects: LinkEffects
) -> LinkService:
    """`link`/`unlink`, fed also by the texts sent to the bot's Session ID (link codes)."""
    migration = config.migration

    async def notify(room_id: str, markdown: str) -> None:
        await send_notice(bot, room_id, markdown)

    settings = LinkSettings(
        bot_session_id=bot_session_id,
        bot_mxid=config.bot_mxid,
        command_prefix=config.bridge.command_prefix,
        code_ttl_ms=int(migration.link_code_ttl * 1000),
        codes_per_hour=migration.link_codes_per_hour,
    )
    return LinkService(
        links,
        settings,
        notify=notify,
        on_linked=effects.on_linked,
        on_unlinked=effects.on_unlinked,
    )
