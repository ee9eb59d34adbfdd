"""The durable Matrix inbox: appservice transactions stored before they are acknowledged."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import MatrixInboxEvent
from bridge.db.records import InboxEventRecord, now_ms
from bridge.db.repos._sql import Clock
from bridge.db.repos.transactions import TransactionRepo

log = logging.getLogger("bridge.db.repos.inbox")

DAY_MS = 86_400_000
BATCH_CHARS = 4 * 1024 * 1024
# The key of the PostgreSQL advisory lock every writer of matrix_inbox holds until it commits.
WRITE_LOCK_KEY = 0x5E55_10B0


async def _one_writer_at_a_time(s: AsyncSession) -> None:
    """Hold the inbox's write lock until ``s`` commits, so rows become visible in id order.

    The pump reads rows with an id above the highest it has seen. PostgreSQL draws an id when
    the row is inserted, not when it is committed: without the lock a transaction that drew a
    lower id and committed after a higher one had been read would be skipped for good. SQLite
    has one writer at a time already.
    """
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})


class MatrixInboxRepo:
    """Reads and writes ``matrix_inbox``, and ``appservice_txn`` through the transactions repo."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock
        self._transactions = TransactionRepo(db, clock)

    async def accept(
        self,
        txn_id: str,
        body_hash: str,
        events: Sequence[Mapping[str, Any]],
        *,
        tx: AsyncSession | None = None,
    ) -> bool:
        """Record a transaction and store its events, atomically; False if already accepted.

        A replayed transaction (same id and body) stores nothing.
        """
        now = self._clock()
        async with self._db.use(tx) as s:
            await _one_writer_at_a_time(s)
            if not await self._transactions.claim_transaction(txn_id, body_hash, tx=s):
                return False
            # Written in batches: a 60 MiB transaction is not also held as 60 MiB of JSON.
            batch: list[dict[str, Any]] = []
            size = 0
            for event in events:
                text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                room_id = str(event.get("room_id") or "")
                batch.append(
                    {"txn_id": txn_id, "room_id": room_id, "event": text, "received_at": now}
                )
                size += len(text)
                if size >= BATCH_CHARS:
                    await s.execute(insert(MatrixInboxEvent), batch)
                    batch, size = [], 0
            if batch:
                await s.execute(insert(MatrixInboxEvent), batch)
        return True

    async def pending(
        self, after_id: int, limit: int, *, tx: AsyncSession | None = None
    ) -> list[InboxEventRecord]:
        """Stored events with an id above ``after_id``, in arrival order."""
        stmt = (
            select(MatrixInboxEvent.id, MatrixInboxEvent.room_id, MatrixInboxEvent.event)
            .where(MatrixInboxEvent.id > after_id)
            .order_by(MatrixInboxEvent.id)
            .limit(limit)
        )
        async with self._db.use(tx) as s:
            rows = (await s.execute(stmt)).all()
        return [
            InboxEventRecord(id=i, room_id=room, event=json.loads(raw)) for i, room, raw in rows
        ]

    async def requeue(
        self, event: Mapping[str, Any], txn_id: str, *, tx: AsyncSession | None = None
    ) -> None:
        """Store one event again, after every stored one (a parked event being retried);
        ``txn_id`` names where it came from (no transaction id is claimed)."""
        row = MatrixInboxEvent(
            txn_id=txn_id,
            room_id=str(event.get("room_id") or ""),
            event=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
            received_at=self._clock(),
        )
        async with self._db.use(tx) as s:
            await _one_writer_at_a_time(s)
            s.add(row)

    async def done(self, item_id: int, *, tx: AsyncSession | None = None) -> None:
        """Forget a handled event."""
        async with self._db.use(tx) as s:
            await s.execute(delete(MatrixInboxEvent).where(MatrixInboxEvent.id == item_id))

    async def is_empty(self, *, tx: AsyncSession | None = None) -> bool:
        """Whether every stored event has been handled."""
        async with self._db.use(tx) as s:
            found = (await s.execute(select(exists().select_from(MatrixInboxEvent)))).scalar()
            return not found

    async def prune(self, retention_days: int, *, tx: AsyncSession | None = None) -> int:
        """Forget transaction ids older than ``retention_days``; returns how many.

        Unhandled events are kept whatever their age.
        """
        older_than = self._clock() - retention_days * DAY_MS
        async with self._db.use(tx) as s:
            count = await self._transactions.prune_transactions(older_than, tx=s)
        if count:
            log.debug("pruned %d appservice transaction ids", count)
        return count

    async def count(self, *, tx: AsyncSession | None = None) -> int:
        """How many events are waiting (for metrics)."""
        stmt = select(func.count()).select_from(MatrixInboxEvent)
        async with self._db.use(tx) as s:
            return int((await s.execute(stmt)).scalar_one())
