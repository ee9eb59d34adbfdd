"""The bridge's :class:`bridge.session.poller.PollStateStore`: swarm poll cursors in
``poll_cursor`` and seen hashes in ``inbound_dedup``, with the cursors cached in memory.

Every poll cycle reads each (node, namespace) cursor of an account, so the cursors are kept
write-through in memory: the first read of an account loads all its cursors in one query,
later reads come from memory, and a write goes to the database first and to memory only once
it succeeded. A failed write drops the account's cached cursors, so the next read loads them
from the database again. The database stays the truth, so the ack/crash semantics of
docs/architecture.md are unchanged: a cursor moves only past committed messages, and a crash
re-delivers instead of losing.

The rows' ``updated_at`` tells which node's cursors moved last (:meth:`DbPollState.cursor_nodes`):
a restarted poller goes back to that node instead of re-reading the swarm from another
(docs/session-protocol.md §6.6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.db.repos.cursors import CursorRepo


@dataclass
class _Cursors:
    """One account's cursors as loaded: (node, namespace) -> last hash, node -> last move."""

    last: dict[tuple[str, int], str] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)


def _poller(account: str) -> str:
    return f"snode:{account}"


class DbPollState:
    """The :class:`bridge.session.poller.PollStateStore` of the bridge (see module docs)."""

    def __init__(self, cursors: CursorRepo) -> None:
        self._cursors = cursors
        self._cache: dict[str, _Cursors] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def _seen_key(account: str, hash_: str) -> str:
        return f"seen:{account}:{hash_}"

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """The cursor of (node, account, namespace)."""
        cached = self._cache.get(account)
        if cached is None:
            async with self._lock(account):
                cached = await self._load(account)
        return cached.last.get((node, namespace))

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """Move the cursor of (node, account, namespace): the database first, then memory."""
        async with self._lock(account):
            try:
                record = await self._cursors.set_cursor(
                    _poller(account), node, str(namespace), last_hash=value
                )
            except BaseException:
                # The write may or may not have landed: re-read the database next time.
                self._cache.pop(account, None)
                raise
            cached = self._cache.get(account)
            if cached is not None:
                cached.last[(node, namespace)] = value
                cached.moved[node] = max(cached.moved.get(node, 0), record.updated_at)

    async def cursor_nodes(self, account: str) -> dict[str, int]:
        """Nodes holding a cursor of ``account``, each with the time its cursors last moved."""
        cached = self._cache.get(account)
        if cached is None:
            async with self._lock(account):
                cached = await self._load(account)
        return dict(cached.moved)

    def forget(self, account: str) -> None:
        """Drop ``account``'s cached cursors (its client stopped); the database keeps them."""
        self._cache.pop(account, None)
        self._locks.pop(account, None)

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for ``account``."""
        keys = {self._seen_key(account, h): h for h in hashes}
        found = await self._cursors.processed_among(list(keys))
        return {keys[k] for k in found}

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """Record a committed hash (pruned with the other dedup markers)."""
        await self._cursors.claim_inbound(self._seen_key(account, hash_))

    def _lock(self, account: str) -> asyncio.Lock:
        return self._locks.setdefault(account, asyncio.Lock())

    async def _load(self, account: str) -> _Cursors:
        """The account's cursors, read in one query unless another caller just did."""
        cached = self._cache.get(account)
        if cached is not None:
            return cached
        loaded = _Cursors()
        for record in await self._cursors.list_cursors(_poller(account)):
            if record.last_hash and record.namespace_or_room.lstrip("-").isdigit():
                loaded.last[(record.node, int(record.namespace_or_room))] = record.last_hash
                moved = loaded.moved.get(record.node, 0)
                loaded.moved[record.node] = max(moved, record.updated_at)
        self._cache[account] = loaded
        return loaded
