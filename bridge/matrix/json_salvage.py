"""Reading the parts of a transaction body that ``json.loads`` refuses as a whole.

Python's JSON decoder recurses once per nesting level, so one event nested a few thousand
levels deep (or one number of more than 4,300 digits) makes the whole body fail to parse, and
every good event of that transaction would be lost with it. This module walks the top-level
object without recursion: the ``events`` and ephemeral lists are cut into their elements, each
element is parsed on its own, and an element that cannot be parsed is counted instead of
kept. Other top-level keys are skipped unread (the bridge uses none of them).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

# The lists of a transaction that are kept (docs/matrix-side.md §1.3); everything else is
# skipped without being parsed.
LIST_KEYS = frozenset({"events", "ephemeral", "de.sorunome.msc2409.ephemeral"})

_WS = re.compile(r"[ \t\n\r]*")
# A string, a run of opening brackets or a run of closing ones: whole runs at once, so a value
# nested 100,000 levels deep costs two matches, not 200,000.
_STRUCTURE = re.compile(r'"|[\[{]+|[\]}]+')
# A number or literal, up to the next delimiter (checked only if the element is parsed).
_SCALAR = re.compile(r"[^\s,\]}\[{\"]+")


def _no_constant(name: str) -> None:
    # NaN and ±Infinity are not JSON (RFC 8259) and cannot be sent on to a homeserver; they
    # are read as null.
    return None


def _finite(number: str) -> float | None:
    # 1e99999 overflows to inf, which cannot be written back as JSON either.
    value = float(number)
    return value if math.isfinite(value) else None


# strict=False: raw control characters inside strings are accepted (and NUL removed later)
# rather than costing the whole transaction.
DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, strict=False)


class Unreadable(ValueError):
    """The body's top level is not a readable JSON object."""


@dataclass
class Salvaged:
    """What could be read: the top-level object (with the lists of :data:`LIST_KEYS` holding
    only their parsable elements) and, per list, how many elements were unparsable."""

    body: dict[str, Any] = field(default_factory=dict)
    unparsable: dict[str, int] = field(default_factory=dict)


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def _expect(text: str, pos: int, chars: str) -> tuple[str, int]:
    pos = _skip_ws(text, pos)
    if pos >= len(text) or text[pos] not in chars:
        raise Unreadable(f"expected one of {chars!r} at offset {pos}")
    return text[pos], pos + 1


def value_end(text: str, pos: int) -> int:
    """The offset just after the JSON value starting at ``pos`` (no whitespace before it).

    Containers are matched bracket by bracket without checking what is between them: the
    caller either parses the slice (which checks it) or throws it away.
    """
    if pos >= len(text):
        raise Unreadable("value expected at the end of the body")
    if text[pos] == '"':
        try:
            return DECODER.raw_decode(text, pos)[1]  # a string: no recursion
        except ValueError as e:
            raise Unreadable(str(e)) from None
    if text[pos] not in "[{":
        scalar = _SCALAR.match(text, pos)
        if scalar is None:
            raise Unreadable(f"value expected at offset {pos}")
        return scalar.end()
    depth = 0
    while True:
        match = _STRUCTURE.search(text, pos)
        if match is None:
            raise Unreadable("unterminated array or object")
        run = match.group()
        if run == '"':
            pos = value_end(text, match.start())
            continue
        if run[0] in "[{":
            depth += len(run)
            pos = match.end()
            continue
        if len(run) >= depth:
            return match.start() + depth
        depth -= len(run)
        pos = match.end()


def _read_list(text: str, pos: int) -> tuple[list[Any], int, int]:
    """Parse the array at ``pos`` element by element: (parsed elements, unparsable, end)."""
    items: list[Any] = []
    unparsable = 0
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return items, 0, pos + 1
    while True:
        start = _skip_ws(text, pos)
        try:
            item, end = DECODER.raw_decode(text, start)
            items.append(item)
        except (ValueError, RecursionError):
            unparsable += 1
            end = value_end(text, start)  # skip it
        sep, pos = _expect(text, end, ",]")
        if sep == "]":
            return items, unparsable, pos


def salvage(text: str) -> Salvaged:
    """Read the transaction object in ``text`` as far as it can be read (module docstring).

    Raises :class:`Unreadable` when the top level itself is not a JSON object.
    """
    found = Salvaged()
    _, pos = _expect(text, 0, "{")
    pos = _skip_ws(text, pos)
    if pos < len(text) and text[pos] == "}":
        pos += 1
    else:
        while True:
            pos = _skip_ws(text, pos)
            if pos >= len(text) or text[pos] != '"':
                raise Unreadable(f"object key expected at offset {pos}")
            key_end = value_end(text, pos)
            key = DECODER.decode(text[pos:key_end])
            _, pos = _expect(text, key_end, ":")
            start = _skip_ws(text, pos)
            if key in LIST_KEYS and text.startswith("[", start):
                items, bad, pos = _read_list(text, start)
                found.body[key] = items
                found.unparsable[key] = bad
            else:
                pos = value_end(text, start)
                if key in LIST_KEYS:
                    found.body[key] = None  # present but not a list
            sep, pos = _expect(text, pos, ",}")
            if sep == "}":
                break
    if _skip_ws(text, pos) != len(text):
        raise Unreadable(f"extra data after the object at offset {pos}")
    return found
