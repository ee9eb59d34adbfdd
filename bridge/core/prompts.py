"""Conversations where the bot waits for the user's next message (e.g. a recovery phrase)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PROMPT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Prompt:
    kind: str
    room_id: str
    expires_at: float


class Prompts:
    """At most one open prompt per Matrix user, bound to one room, expiring after a while."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: dict[str, Prompt] = {}

    def open(self, mxid: str, kind: str, room_id: str, timeout: float = PROMPT_TIMEOUT_S) -> None:
        self._open[mxid] = Prompt(kind, room_id, self._clock() + timeout)

    def peek(self, mxid: str, room_id: str) -> Prompt | None:
        """The user's open, unexpired prompt in ``room_id`` (left open), or None."""
        prompt = self._open.get(mxid)
        if prompt is None or prompt.room_id != room_id or prompt.expires_at <= self._clock():
            return None
        return prompt

    def cancel(self, mxid: str) -> bool:
        """Close the user's prompt; True if one was open and unexpired."""
        prompt = self._open.pop(mxid, None)
        return prompt is not None and prompt.expires_at > self._clock()

    def take(self, mxid: str, room_id: str) -> Prompt | None:
        """The user's open prompt in ``room_id`` (closing it), or None."""
        prompt = self._open.get(mxid)
        if prompt is None or prompt.room_id != room_id:
            return None
        del self._open[mxid]
        return prompt if prompt.expires_at > self._clock() else None
