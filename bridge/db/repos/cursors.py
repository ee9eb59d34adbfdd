"""Poll cursors and the durable inbound dedup markers.

A cursor advances only after the items it covers are committed; a crash in between
re-delivers them, and :meth:`CursorRepo.claim_inbound` makes re-delivery harmless.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import InboundDedup, PollCursor
from bridge.db.records import CursorRecord, now_ms
from bridge.db.repos._sql import Clock, execute_count, insert_ignore, select_fresh, upsert

_CURSOR_KEY = ("poller", "node", "namespace_or_room")


def _cursor(row: PollCursor) -> CursorRecord:
    return CursorRecord(
        poller=row.poller,
        node=row.node,
        namespace_or_room=row.namespace_or_room,
        last_hash=row.last_hash,
        seqno=row.seqno,
        updated_at=row.updated_at,
    )


class CursorRepo:
    """Reads and writes ``poll_cursor`` and ``inbound_dedup``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def get_cursor(
        self, poller: str, node: str, namespace_or_room: str, *, tx: AsyncSession | None = None
    ) -> CursorRecord | None:
        """The cursor of ``poller`` (e.g. ``snode:<account>``) for a node and namespace/room.

        ``node`` is ``''`` where it does not apply (community servers).
        """
        async with self._db.use(tx) as s:
            key = (poller, node, namespace_or_room)
            row = await s.get(PollCursor, key, populate_existing=True)
            return None if row is None else _cursor(row)

    async def list_cursors(
        self, poller: str, *, tx: AsyncSession | None = None
    ) -> list[CursorRecord]:
        """Every cursor of one poller."""
        stmt = (
            select_fresh(PollCursor)
            .where(PollCursor.poller == poller)
            .order_by(PollCursor.node, PollCursor.namespace_or_room)
        )
        async with self._db.use(tx) as s:
            return [_cursor(row) for row in await s.scalars(stmt)]

    async def set_cursor(
        self,
        poller: str,
        node: str,
        namespace_or_room: str,
        *,
        last_hash: str | None = None,
        seqno: int | None = None,
        tx: AsyncSession | None = None,
    ) -> CursorRecord:
        """Create or overwrite a cursor (``last_hash`` for swarms, ``seqno`` for communities)."""
        record = CursorRecord(
            poller=poller,
            node=node,
            namespace_or_room=namespace_or_room,
            last_hash=last_hash,
            seqno=seqno,
            updated_at=self._clock(),
        )
        values = dataclasses.asdict(record)
        async with self._db.use(tx) as s:
            await s.execute(upsert(s, PollCursor, values, key=_CURSOR_KEY))
        return record

    async def delete_cursors(self, poller: str, *, tx: AsyncSession | None = None) -> int:
        """Forget every cursor of a poller (e.g. a logged-out account); returns how many."""
        async with self._db.use(tx) as s:
            return await execute_count(s, delete(PollCursor).where(PollCursor.poller == poller))

    async def claim_inbound(
        self, key: str, *, portal_id: int | None = None, tx: AsyncSession | None = None
    ) -> bool:
        """Mark an inbound item processed; True if it was new, False if already processed.

        Call it inside the transaction that records the item's effects, so that a rollback
        also releases the claim. Keys look like ``swarm:<hash>`` or ``sogs:<server>|<id>``.
        """
        values = {"key": key, "portal_id": portal_id, "processed_at": self._clock()}
        async with self._db.use(tx) as s:
            return await execute_count(s, insert_ignore(s, InboundDedup, values)) == 1

    async def is_processed(self, key: str, *, tx: AsyncSession | None = None) -> bool:
        """Whether an inbound item has been claimed."""
        async with self._db.use(tx) as s:
            return await s.get(InboundDedup, key) is not None

    async def processed_among(
        self, keys: Sequence[str], *, tx: AsyncSession | None = None
    ) -> set[str]:
        """Which of ``keys`` have been claimed (one query)."""
        if not keys:
            return set()
        stmt = select(InboundDedup.key).where(InboundDedup.key.in_(list(keys)))
        async with self._db.use(tx) as s:
            return set((await s.scalars(stmt)).all())

    async def prune_inbound(self, older_than: int, *, tx: AsyncSession | None = None) -> int:
        """Delete dedup markers processed before ``older_than`` (ms); returns how many.

        Only prune past the longest time the network can re-deliver an item.
        """
        stmt = delete(InboundDedup).where(InboundDedup.processed_at < older_than)
        async with self._db.use(tx) as s:
            return await execute_count(s, stmt)
