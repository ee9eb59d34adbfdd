"""Migration commands: ``who`` and ``export`` in a portal, ``migration`` for admins
(docs/migration.md §3, §4)."""

from __future__ import annotations

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent, Handler
from bridge.core.export import Exporter
from bridge.core.moved import MigrationStatus, who_text
from bridge.db.repos.portals import PortalRepo

SECTION = "Migration"


def migration_commands(
    status: MigrationStatus,
    exporter: Exporter,
    portals: PortalRepo,
    contacts: Handler | None = None,
) -> list[Command]:
    """``who``, ``export`` (``export contacts`` with a ``contacts`` handler) and ``migration``."""

    async def export(evt: CommandEvent) -> None:
        if evt.args[:1] == ("contacts",) and contacts is not None:
            await contacts(evt)
            return
        portal = await portals.get_by_mxid(evt.room_id)
        if portal is None:
            await evt.reply("`export` works in a bridged room: it saves the room's history.")
            return
        await evt.reply("Exporting this room's history; two files follow (JSON and HTML).")
        archive = await exporter.archive(portal)
        await exporter.upload(portal, archive)

    async def who(evt: CommandEvent) -> None:
        portal = await portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None:
            await evt.reply("`who` works in a bridged room: it lists who has moved to Matrix.")
            return
        report = await status.who(portal)
        names = await status.ghost_names(report)
        await evt.reply(who_text(report, lambda sid: names.get(sid, sid[:10])))

    async def migration(evt: CommandEvent) -> None:
        if not evt.in_management_room:
            await evt.reply("Use `migration` in your management room (it lists every portal).")
            return
        await evt.reply(await status.overview())

    return [
        Command("who", SECTION, "who in this room has moved to Matrix, who is on Session", who),
        Command(
            "export",
            SECTION,
            "this room's bridged history as JSON and HTML files (`contacts`: your contacts)",
            export,
            usage="[contacts]",
        ),
        Command(
            "migration",
            SECTION,
            "every portal's moved and Session counts and their change since last week, links "
            "made, days left",
            migration,
            Level.ADMIN,
        ),
    ]
