"""Each direct conversation's disappearing-messages setting (docs/session-protocol.md §2.14).

Stored in the ``kv`` table under ``dm-timer:<account>:<peer>`` (both Session IDs); the value is
JSON ``{"mode", "timer", "at"}``: the wire number of the mode (0 off, 1 after reading, 2 after
sending), the timer in seconds and the sent timestamp (ms) of the message it was learnt from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from bridge.db.repos.kv import KVRepo

PREFIX = "dm-timer:"


@dataclass(frozen=True)
class TimerRecord:
    """One conversation's setting, as stored."""

    account: str
    peer: str
    mode: int
    timer_seconds: int
    at_ms: int


class TimerStore(Protocol):
    """Where the direct conversations' settings are kept."""

    async def all(self) -> list[TimerRecord]: ...

    async def put(self, record: TimerRecord) -> None: ...


class DirectTimerRepo:
    """:class:`TimerStore` in the ``kv`` table."""

    def __init__(self, kv: KVRepo) -> None:
        self._kv = kv

    async def all(self) -> list[TimerRecord]:
        """Every stored setting; unreadable values are skipped."""
        found = []
        for key, value in await self._kv.items(PREFIX):
            record = _record(key, value)
            if record is not None:
                found.append(record)
        return found

    async def put(self, record: TimerRecord) -> None:
        """Store ``record``, replacing the conversation's previous setting."""
        value = {"mode": record.mode, "timer": record.timer_seconds, "at": record.at_ms}
        await self._kv.set(f"{PREFIX}{record.account}:{record.peer}", json.dumps(value))


def _record(key: str, value: str) -> TimerRecord | None:
    account, _, peer = key.removeprefix(PREFIX).partition(":")
    try:
        data = json.loads(value)
        return TimerRecord(account, peer, int(data["mode"]), int(data["timer"]), int(data["at"]))
    except (ValueError, TypeError, KeyError):
        return None
