"""Commands every user has: help, ping, version."""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent, CommandRegistry

SECTION_GENERAL = "General"


def help_text(
    registry: CommandRegistry, level: Level, prefix: str, in_management_room: bool
) -> str:
    """The help page for a user at ``level``, grouped by section."""
    lines = []
    if in_management_room:
        lines.append(f"This is your management room: commands work with or without `{prefix}`.")
    else:
        lines.append(f"Start commands with `{prefix}`, e.g. `{prefix} help`.")
    by_section = sorted(registry.available_to(level), key=lambda c: c.section)
    for section, commands in groupby(by_section, key=lambda c: c.section):
        lines.append(f"\n**{section}**\n")
        for c in commands:
            usage = f" {c.usage}" if c.usage else ""
            lines.append(f"- `{c.name}{usage}`: {c.summary}")
    return "\n".join(lines)


def builtin_commands(
    registry_ref: Callable[[], CommandRegistry], prefix: str, version: str
) -> list[Command]:
    """help, ping and version; ``registry_ref`` gives the registry ``help`` describes."""

    async def help_cmd(evt: CommandEvent) -> None:
        await evt.reply(help_text(registry_ref(), evt.level, prefix, evt.in_management_room))

    async def ping_cmd(evt: CommandEvent) -> None:
        await evt.reply("Pong! The bridge is running.")

    async def version_cmd(evt: CommandEvent) -> None:
        await evt.reply(version)

    return [
        Command("help", SECTION_GENERAL, "show this help", help_cmd, Level.RELAY),
        Command("ping", SECTION_GENERAL, "check that the bridge answers", ping_cmd, Level.RELAY),
        Command("version", SECTION_GENERAL, "show the bridge version", version_cmd, Level.RELAY),
    ]
