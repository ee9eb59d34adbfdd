"""Turning a message body into a command (pure)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


class CommandRejected(Exception):
    """The message looks like a command but cannot be accepted; the text says why."""


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: tuple[str, ...]
    raw_args: str


def _strip_prefix(body: str, prefix: str, in_management_room: bool) -> str | None:
    if body == prefix or body.startswith(prefix + " "):
        return body[len(prefix) :]
    if in_management_room:
        return body
    return None


def parse_command(body: str, prefix: str, in_management_room: bool) -> ParsedCommand | None:
    """The command in ``body``, or None if it is not addressed to the bot.

    Outside the management room the prefix is required; inside it is optional. Commands are one
    line of printable text: anything else is refused with :class:`CommandRejected`.
    """
    text = body.strip()
    rest = _strip_prefix(text, prefix, in_management_room)
    if rest is None:
        return None
    if "\n" in rest or "\r" in rest:
        raise CommandRejected("Commands are one line; send each command as its own message.")
    if any(unicodedata.category(ch) == "Cc" for ch in rest):
        raise CommandRejected("The command contains control characters; please retype it.")
    words = rest.split()
    if not words:
        return ParsedCommand("help", (), "")
    name = words[0].lower()
    raw_args = rest.strip()[len(words[0]) :].strip()
    return ParsedCommand(name, tuple(words[1:]), raw_args)
