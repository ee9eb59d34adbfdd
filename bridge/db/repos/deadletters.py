"""The dead-letter table: items a path gave up on after a permanent failure.

A row is written by :meth:`DeadLetterRepo.park` and removed by :meth:`DeadLetterRepo.take`
when an admin retries it (docs/architecture.md §4.7).
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import DeadLetter
from bridge.db.records import DeadLetterPath, DeadLetterRecord, now_ms
from bridge.db.repos._sql import Clock, select_fresh

#: Longest error text kept (a traceback's last line is enough for the admin).
MAX_ERROR = 2000


def _record(row: DeadLetter) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=row.id,
        path=DeadLetterPath(row.path),
        portal_id=row.portal_id,
        what=row.what,
        payload=row.payload,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
    )


class DeadLetterRepo:
    """Reads and writes ``dead_letter``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def park(
        self,
        path: DeadLetterPath,
        what: str,
        payload: str,
        error: str,
        *,
        attempts: int,
        portal_id: int | None = None,
        tx: AsyncSession | None = None,
    ) -> DeadLetterRecord:
        """Keep an item that failed for good; returns the stored row."""
        row = DeadLetter(
            path=path.value,
            portal_id=portal_id,
            what=what,
            payload=payload,
            error=error[:MAX_ERROR],
            attempts=attempts,
            created_at=self._clock(),
        )
        async with self._db.use(tx) as s:
            s.add(row)
            await s.flush()
            return _record(row)

    async def get(
        self, item_id: int, *, tx: AsyncSession | None = None
    ) -> DeadLetterRecord | None:
        async with self._db.use(tx) as s:
            row = await s.get(DeadLetter, item_id, populate_existing=True)
            return None if row is None else _record(row)

    async def list(
        self, limit: int | None = None, *, tx: AsyncSession | None = None
    ) -> list[DeadLetterRecord]:
        """Parked items, oldest first."""
        stmt = select_fresh(DeadLetter).order_by(DeadLetter.id).limit(limit)
        async with self._db.use(tx) as s:
            return [_record(row) for row in await s.scalars(stmt)]

    async def take(self, item_id: int, *, tx: AsyncSession | None = None) -> bool:
        """Remove a parked item (it is being retried); False if it was not there."""
        stmt = delete(DeadLetter).where(DeadLetter.id == item_id).returning(DeadLetter.id)
        async with self._db.use(tx) as s:
            return (await s.scalar(stmt)) is not None

    async def count(self, *, tx: AsyncSession | None = None) -> int:
        """How many items are parked (for metrics and ``status``)."""
        async with self._db.use(tx) as s:
            return int(
                (await s.execute(select(func.count()).select_from(DeadLetter))).scalar_one()
            )
