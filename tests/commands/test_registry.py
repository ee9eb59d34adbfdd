from __future__ import annotations

import pytest

from bridge.commands.builtin import builtin_commands
from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent, CommandRegistry

PREFIX = "!session"


def make_registry() -> CommandRegistry:
    registry = CommandRegistry()
    for command in builtin_commands(lambda: registry, PREFIX, "bridge 1.0"):
        registry.register(command)

    async def secret(evt: CommandEvent) -> None:
        await evt.reply("admin stuff done")

    registry.register(Command("relay", "Portals", "set relay", secret, Level.ADMIN, "<on|off>"))
    return registry


async def run(registry: CommandRegistry, name: str, level: Level, mgmt: bool = True) -> list[str]:
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    event = CommandEvent("@u:x", "!r:x", name, (), "", level, mgmt, reply)
    await registry.dispatch(event, PREFIX)
    return replies


async def test_help_lists_commands_by_section_for_the_users_level() -> None:
    registry = make_registry()
    (text,) = await run(registry, "help", Level.USER)
    assert "**General**" in text
    assert "`ping`" in text and "`version`" in text
    assert "relay" not in text  # admin-only, hidden from users
    (admin_text,) = await run(registry, "help", Level.ADMIN)
    assert "`relay <on|off>`" in admin_text and "**Portals**" in admin_text


async def test_help_outside_management_room_mentions_the_prefix() -> None:
    (text,) = await run(make_registry(), "help", Level.USER, mgmt=False)
    assert "`!session help`" in text


async def test_ping_and_version() -> None:
    registry = make_registry()
    assert await run(registry, "ping", Level.RELAY) == ["Pong! The bridge is running."]
    assert await run(registry, "version", Level.RELAY) == ["bridge 1.0"]


async def test_unknown_command_suggests_close_names() -> None:
    (text,) = await run(make_registry(), "pnig", Level.USER)
    assert "Unknown command `pnig`" in text
    assert "`ping`" in text
    assert "`!session help`" in text


async def test_insufficient_level_is_refused_politely() -> None:
    (text,) = await run(make_registry(), "relay", Level.USER)
    assert "not allowed" in text and "*admin*" in text and "*user*" in text


async def test_admin_runs_admin_command() -> None:
    assert await run(make_registry(), "relay", Level.ADMIN) == ["admin stuff done"]


def test_duplicate_names_are_a_programming_error() -> None:
    registry = make_registry()

    async def noop(evt: CommandEvent) -> None:
        return None

    with pytest.raises(ValueError, match="twice"):
        registry.register(Command("ping", "x", "y", noop))
