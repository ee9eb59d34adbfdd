"""What the bridge takes from an appservice transaction body, whatever it is sent.

The homeserver re-sends a transaction it got no 2xx for, with no limit and before anything
newer (docs/matrix-side.md §1.3), so whatever the bridge cannot store must be dropped here
rather than refused, or one bad event would hold back every later one:

* a body that is no transaction at all (not a JSON object, no ``events`` list) and a
  transaction id that is no id (over 255 characters, control characters) are answered 400;
  a homeserver never sends either;
* an event is kept only if it is a JSON object whose ``type``, ``room_id`` and ``event_id``
  are identifier strings (1 to 255 characters, no control characters) and that is nested at most
  :data:`MAX_EVENT_DEPTH` levels (deeper values break Python's recursive JSON code on the
  way to the database); other events are dropped, each with one log line (the first
  :data:`LOGGED_DROPS` of a transaction, then a count);
* in every kept string and key, NUL is removed and a lone UTF-16 surrogate (``"\\ud800"``)
  becomes U+FFFD: PostgreSQL can store neither, and neither can be sent anywhere, while the
  rest of the message is worth keeping;
* the ephemeral list keeps only JSON objects, under the same depth and string rules.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bridge.matrix.json_salvage import DECODER, Salvaged, Unreadable, salvage

log = logging.getLogger("bridge.matrix.transactions")

MAX_ID_LENGTH = 255  # the spec's limit for user, room and event ids
MAX_EVENT_DEPTH = 64
LOGGED_DROPS = 10

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BadTransaction(ValueError):
    """The body is no transaction: answered 400 with ``errcode``."""

    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode


@dataclass(frozen=True)
class Transaction:
    """The usable part of a transaction body."""

    events: list[dict[str, Any]]
    ephemeral: list[dict[str, Any]]
    dropped_events: int
    dropped_ephemeral: int
    # End-to-bridge encryption traffic (docs/matrix-side.md §1.4): MSC2409 to-device
    # messages, MSC3202 device list changes and one-time-key counts; empty when not sent.
    to_device: list[dict[str, Any]] = field(default_factory=list)
    device_lists: dict[str, Any] = field(default_factory=dict)
    otk_counts: dict[str, Any] = field(default_factory=dict)


def printable(value: object, limit: int = 80) -> str:
    """``value`` for a log line: one line, escaped, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def txn_id_problem(txn_id: str) -> str | None:
    """Why ``txn_id`` is not a usable transaction id, or None if it is."""
    return _id_problem(txn_id)


def _id_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is not a string ({type(value).__name__})"
    if not value or len(value) > MAX_ID_LENGTH:
        return f"has {len(value)} characters (1 to {MAX_ID_LENGTH} allowed)"
    if _CONTROL.search(value):
        return "contains control characters"
    return None


def _clean(text: str) -> str:
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def _clean_keys(node: dict[str, Any]) -> None:
    if any(_UNSTORABLE.search(key) for key in node):
        cleaned = {_clean(key): value for key, value in node.items()}
        node.clear()
        node.update(cleaned)


def _fix_strings(node: dict[str, Any] | list[Any], clean: bool) -> list[Any]:
    """Clean the strings directly in ``node`` (if ``clean``); return its containers."""
    if isinstance(node, dict):
        if clean:
            _clean_keys(node)
        pairs: Any = node.items()
    else:
        pairs = enumerate(node)
    children = []
    for key, value in pairs:  # replacing a value keeps the size: allowed while iterating
        if isinstance(value, dict | list):
            children.append(value)
        elif clean and isinstance(value, str) and _UNSTORABLE.search(value):
            node[key] = _clean(value)
    return children


def sanitise(value: dict[str, Any], clean: bool) -> bool:
    """Clean the strings of ``value`` in place (when ``clean``: some may need it); False if it
    is nested deeper than :data:`MAX_EVENT_DEPTH` (then it may be half cleaned: drop it).

    Iterative, so the depth of the value costs no Python stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EVENT_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in _fix_strings(node, clean))
    return True


def _event_problem(event: object, clean: bool) -> str | None:
    if not isinstance(event, dict):
        return f"not a JSON object but {type(event).__name__}"
    for key in ("type", "room_id", "event_id"):
        problem = _id_problem(event.get(key))
        if problem is not None:
            return f"its {key} {problem}"
    if not sanitise(event, clean):
        return f"nested deeper than {MAX_EVENT_DEPTH} levels"
    return None


def _keep_events(txn_id: str, raw: list[Any], clean: bool) -> tuple[list[dict[str, Any]], int]:
    kept: list[dict[str, Any]] = []
    dropped = 0
    for event in raw:
        problem = _event_problem(event, clean)
        if problem is None:
            kept.append(event)
            continue
        dropped += 1
        if dropped <= LOGGED_DROPS:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            log.warning(
                "Dropping event %s of transaction %s: %s",
                printable(event_id),
                txn_id,
                problem,
            )
    return kept, dropped


def _keep_ephemeral(raw: object, clean: bool) -> tuple[list[dict[str, Any]], int]:
    if not isinstance(raw, list):
        return [], 0
    kept = [edu for edu in raw if isinstance(edu, dict) and sanitise(edu, clean)]
    return kept, len(raw) - len(kept)


def _load(text: str) -> tuple[object, Salvaged | None]:
    try:
        return DECODER.decode(text), None
    except (ValueError, RecursionError):
        # One element too deep or unparsable: keep the others (json_salvage).
        try:
            found = salvage(text)
        except Unreadable as e:
            raise BadTransaction("M_NOT_JSON", f"Body is not JSON: {e}") from None
        return found.body, found


def parse_transaction(txn_id: str, text: str) -> Transaction:
    """The usable part of the body ``text`` of transaction ``txn_id`` (module docstring).

    Raises :class:`BadTransaction` if the body is no transaction.
    """
    body, salvaged = _load(text)
    # Only an escape (\\u0000, \\ud800) or a raw NUL can put NUL or a surrogate into a string;
    # without either, the walk checks depth only.
    clean = "\\u" in text or "\x00" in text
    del text
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BadTransaction("M_BAD_JSON", "Missing events list in body")
    unparsable = salvaged.unparsable if salvaged is not None else {}
    events, dropped = _keep_events(txn_id, body["events"], clean)
    dropped += unparsable.get("events", 0)
    key = "ephemeral" if body.get("ephemeral") else "de.sorunome.msc2409.ephemeral"
    ephemeral, dropped_edus = _keep_ephemeral(body.get(key), clean)
    dropped_edus += unparsable.get(key, 0)
    if unparsable.get("events"):
        log.warning(
            "Dropping %d unparsable events (too deep or not JSON) of transaction %s",
            unparsable["events"],
            txn_id,
        )
    if dropped > LOGGED_DROPS:
        log.warning("Dropped %d events of transaction %s in all", dropped, txn_id)
    if dropped_edus:
        log.warning("Dropping %d malformed ephemeral events of %s", dropped_edus, txn_id)
    return Transaction(events, ephemeral, dropped, dropped_edus, *_crypto_traffic(body, clean))


def _either(body: dict[str, Any], stable: str, unstable: str) -> object:
    value = body.get(stable)
    return value if value is not None else body.get(unstable)


def _crypto_traffic(
    body: dict[str, Any], clean: bool
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The encryption traffic of a transaction, each part only if well-formed."""
    to_device, _ = _keep_ephemeral(
        _either(body, "to_device", "de.sorunome.msc2409.to_device"), clean
    )
    lists = _either(body, "device_lists", "org.matrix.msc3202.device_lists")
    counts = _either(
        body, "device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count"
    )
    lists = lists if isinstance(lists, dict) and sanitise(lists, clean) else {}
    counts = counts if isinstance(counts, dict) and sanitise(counts, clean) else {}
    return to_device, lists, counts
