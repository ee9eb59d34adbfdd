"""Poll cursors of the community client: one ``seqno`` per room, one id per inbox/outbox.

The client reads cursors when it builds a poll and never moves them by itself: the caller
commits them (:meth:`CommunityClient.commit`) after it has durably handled the items, so a
crash re-delivers instead of losing (docs/architecture.md §4). The bridge provides a
database-backed
:class:`CursorStore`; :class:`MemoryCursorStore` is for tests and tools.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["INBOX", "OUTBOX", "CursorStore", "MemoryCursorStore", "room_stream"]

INBOX = "inbox"
OUTBOX = "outbox"


def room_stream(token: str) -> str:
    """The stream name of a room's ``seqno`` cursor."""
    return f"room:{token}"


class CursorStore(Protocol):
    """Where cursors live; ``server`` is the server's base URL, ``stream`` a stream name."""

    async def get(self, server: str, stream: str) -> int:
        """The committed cursor, 0 when none was ever committed."""
        ...

    async def set(self, server: str, stream: str, value: int) -> None:
        """Commit a cursor."""
        ...


class MemoryCursorStore:
    """A :class:`CursorStore` in a dict (lost on exit)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], int] = {}

    async def get(self, server: str, stream: str) -> int:
        """The committed cursor, 0 by default."""
        return self.values.get((server, stream), 0)

    async def set(self, server: str, stream: str, value: int) -> None:
        """Commit a cursor."""
        self.values[(server, stream)] = value
