"""Swarm poll cursors in ``poll_cursor`` and seen hashes in ``inbound_dedup``, with the cursors
cached in memory: the part of a :class:`bridge.session.poller.PollStateStore` that the 1:1 poll
state (``bridge/core/direct/poll_state.py``) and each identity's group store
(``bridge/core/group/store.py``) share; they differ only in how they name their rows.

Every poll cycle reads each (node, namespace) cursor of a polled key (an account, a group), so
the cursors are kept write-through in memory: the first read of a key loads all its cursors in
one query, later reads come from memory, and a write goes to the database first and to memory
only once it succeeded. A failed write drops the key's cached cursors, so the next read loads
them from the database again. The database stays the truth, so the ack/crash semantics of
docs/architecture.md are unchanged: a cursor moves only past committed messages, and a crash
re-delivers instead of losing.

The rows' ``updated_at`` tells which node's cursors moved last (:meth:`SwarmCursors.nodes`): a
restarted poller goes back to that node instead of re-reading the swarm from another
(docs/session-protocol.md §6.6, docs/groups-v2.md §6.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bridge.db.repos.cursors import CursorRepo

__all__ = ["SwarmCursors"]


@dataclass
class _Loaded:
    """One key's cursors as loaded: (node, namespace) -> last hash, node -> last move (ms)."""

    last: dict[tuple[str, int], str] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)


class SwarmCursors:
    """Cursors and seen hashes of polled keys; ``poller`` names a key's cursor rows and
    ``seen_key`` a (key, hash) dedup marker."""

    def __init__(
        self,
        cursors: CursorRepo,
        *,
        poller: Callable[[str], str],
        seen_key: Callable[[str, str], str],
    ) -> None:
        self._cursors = cursors
        self._poller = poller
        self._seen_key = seen_key
        self._cache: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def cursor(self, node: str, key: str, namespace: int) -> str | None:
        """The cursor of (node, key, namespace)."""
        return (await self._loaded(key)).last.get((node, namespace))

    async def move(self, node: str, key: str, namespace: int, value: str) -> None:
        """Move the cursor of (node, key, namespace): the database first, then memory."""
        async with self._lock(key):
            try:
                record = await self._cursors.set_cursor(
                    self._poller(key), node, str(namespace), last_hash=value
                )
            except BaseException:
                # The write may or may not have landed: read the database again next time.
                self._cache.pop(key, None)
                raise
            cached = self._cache.get(key)
            if cached is not None:
                cached.last[(node, namespace)] = value
                cached.moved[node] = max(cached.moved.get(node, 0), record.updated_at)

    async def nodes(self, key: str) -> dict[str, int]:
        """Nodes holding a cursor of ``key``, each with the time its cursors last moved."""
        return dict((await self._loaded(key)).moved)

    def forget(self, key: str) -> None:
        """Drop ``key``'s cached cursors (its poller stopped); the database keeps them."""
        self._cache.pop(key, None)
        self._locks.pop(key, None)

    async def seen(self, key: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for ``key``."""
        markers = {self._seen_key(key, h): h for h in hashes}
        return {markers[m] for m in await self._cursors.processed_among(list(markers))}

    async def mark_seen(self, key: str, hash_: str) -> None:
        """Record a committed hash (pruned with the other dedup markers)."""
        await self._cursors.claim_inbound(self._seen_key(key, hash_))

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _loaded(self, key: str) -> _Loaded:
        """``key``'s cursors, read in one query unless cached (or just read by another)."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        async with self._lock(key):
            cached = self._cache.get(key)
            if cached is None:
                cached = _Loaded()
                for record in await self._cursors.list_cursors(self._poller(key)):
                    ns = record.namespace_or_room
                    if record.last_hash and ns.lstrip("-").isdigit():
                        cached.last[(record.node, int(ns))] = record.last_hash
                        moved = cached.moved.get(record.node, 0)
                        cached.moved[record.node] = max(moved, record.updated_at)
                self._cache[key] = cached
            return cached
