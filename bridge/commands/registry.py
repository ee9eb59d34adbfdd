"""The command registry: what exists, who may run it, and dispatching."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bridge.commands.permissions import Level, level_summary

log = logging.getLogger("bridge.commands")

Reply = Callable[[str], Awaitable[None]]
Redact = Callable[[], Awaitable[bool]]


async def _cannot_redact() -> bool:
    return False


@dataclass(frozen=True)
class CommandEvent:
    """One command as a handler sees it; ``reply`` sends Markdown to the room."""

    sender: str
    room_id: str
    name: str
    args: tuple[str, ...]
    raw_args: str
    level: Level
    in_management_room: bool
    reply: Reply
    event_id: str = ""
    # Removes the message that carried the command (for secrets); False if not allowed.
    redact_command: Redact = _cannot_redact


Handler = Callable[[CommandEvent], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    section: str
    summary: str
    handler: Handler
    level: Level = Level.USER
    usage: str = ""
    aliases: tuple[str, ...] = ()


class CommandRegistry:
    """Commands by name and alias."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._by_name: dict[str, Command] = {}
        self._ordered: list[Command] = []
        for command in commands:
            self.register(command)

    def register(self, command: Command) -> None:
        for name in (command.name, *command.aliases):
            if name in self._by_name:
                raise ValueError(f"command {name!r} registered twice")
            self._by_name[name] = command
        self._ordered.append(command)

    def get(self, name: str) -> Command | None:
        return self._by_name.get(name)

    def available_to(self, level: Level) -> list[Command]:
        """Commands ``level`` may run, in registration order."""
        return [c for c in self._ordered if c.level <= level]

    def suggestions(self, name: str, level: Level) -> list[str]:
        names = [c.name for c in self.available_to(level)]
        return difflib.get_close_matches(name, names, n=3, cutoff=0.6)

    async def dispatch(self, event: CommandEvent, prefix: str) -> None:
        """Run the command, or explain politely why it is not run."""
        command = self.get(event.name)
        if command is None:
            await event.reply(self._unknown_text(event, prefix))
            return
        if event.level < command.level:
            await event.reply(
                f"You are not allowed to use `{command.name}`: it needs the "
                f"*{command.level.name.lower()}* level. {level_summary(event.level)}"
            )
            return
        log.info("Command %s from %s in %s", command.name, event.sender, event.room_id)
        await command.handler(event)

    def _unknown_text(self, event: CommandEvent, prefix: str) -> str:
        close = self.suggestions(event.name, event.level)
        hint = f" Did you mean {', '.join(f'`{n}`' for n in close)}?" if close else ""
        return f"Unknown command `{event.name}`.{hint} Use `{prefix} help` for the list."
