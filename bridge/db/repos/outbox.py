"""The outbox: deliveries to the Session network, with retries that survive restarts.

Lifecycle: ``enqueue`` → ``pending``; ``claim_due`` → ``sending`` (attempts + 1); then
``mark_done``, ``mark_failed`` (gave up) or ``reschedule`` (back to ``pending`` later).
Rows left ``sending`` by a crash go back to ``pending`` with ``requeue_stale``.
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bridge.db.engine import Database
from bridge.db.models import InboundDedup, Outbox
from bridge.db.records import OutboxRecord, OutboxStatus, now_ms
from bridge.db.repos._sql import Clock, execute_count, insert_ignore, select_fresh

log = logging.getLogger("bridge.db.repos.outbox")

_OPEN = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)


def _record(row: Outbox) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        portal_id=row.portal_id,
        login_id=row.login_id,
        kind=row.kind,
        payload=row.payload,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        matrix_event_id=row.matrix_event_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class OutboxRepo:
    """Reads and writes the ``outbox`` table."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def enqueue(
        self,
        portal_id: int,
        kind: str,
        payload: str,
        *,
        login_id: int | None = None,
        matrix_event_id: str | None = None,
        not_before: int | None = None,
        tx: AsyncSession | None = None,
    ) -> OutboxRecord:
        """Add a pending delivery (``payload`` is JSON text), due now or at ``not_before``."""
        record = await self.enqueue_once(
            None,
            portal_id,
            kind,
            payload,
            login_id=login_id,
            matrix_event_id=matrix_event_id,
            not_before=not_before,
            tx=tx,
        )
        assert record is not None
        return record

    async def enqueue_once(
        self,
        dedup_key: str | None,
        portal_id: int,
        kind: str,
        payload: str,
        *,
        login_id: int | None = None,
        matrix_event_id: str | None = None,
        not_before: int | None = None,
        tx: AsyncSession | None = None,
    ) -> OutboxRecord | None:
        """Like :meth:`enqueue`, but only once per ``dedup_key`` (kept in ``inbound_dedup``, in
        the same transaction): a Matrix event handled again after a crash queues nothing.
        Returns None for a duplicate."""
        now = self._clock()
        row = Outbox(
            portal_id=portal_id,
            login_id=login_id,
            kind=kind,
            payload=payload,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now if not_before is None else not_before,
            last_error=None,
            matrix_event_id=matrix_event_id,
            created_at=now,
            updated_at=now,
        )
        async with self._db.use(tx) as s:
            if dedup_key is not None:
                claim = {"key": dedup_key, "portal_id": portal_id, "processed_at": now}
                if await execute_count(s, insert_ignore(s, InboundDedup, claim)) != 1:
                    return None
            s.add(row)
            await s.flush()
            return _record(row)

    async def get(self, outbox_id: int, *, tx: AsyncSession | None = None) -> OutboxRecord | None:
        """The outbox row with this id, if any."""
        async with self._db.use(tx) as s:
            row = await s.get(Outbox, outbox_id, populate_existing=True)
            return None if row is None else _record(row)

    async def claim_due(
        self, now: int, limit: int, *, tx: AsyncSession | None = None
    ) -> list[OutboxRecord]:
        """Claim up to ``limit`` due rows: mark them ``sending`` and count an attempt.

        Keeps each portal in order: a row is only due when no older row of the same portal
        is still pending or sending (a row waiting for a retry holds back the ones after it).
        On PostgreSQL, concurrent claimers skip each other's locked rows.
        """
        earlier = aliased(Outbox)
        blocked = exists().where(
            and_(
                earlier.portal_id == Outbox.portal_id,
                earlier.id < Outbox.id,
                earlier.status.in_(_OPEN),
            )
        )
        pick = (
            select(Outbox.id)
            .where(
                Outbox.status == OutboxStatus.PENDING.value,
                Outbox.next_attempt_at <= now,
                ~blocked,
            )
            .order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._db.use(tx) as s:
            ids = list((await s.scalars(pick)).all())
            if not ids:
                return []
            return await _claim(s, ids, now)

    async def claim_next(
        self, portal_id: int, now: int, limit: int, *, tx: AsyncSession | None = None
    ) -> list[OutboxRecord]:
        """Claim the portal's next rows in order, as :meth:`claim_due` would one by one: its
        oldest open rows, up to the first one that is not pending and due (at most
        ``limit``). Used by the sender right after it delivered the row before them."""
        pick = (
            select(Outbox.id, Outbox.status, Outbox.next_attempt_at)
            .where(Outbox.portal_id == portal_id, Outbox.status.in_(_OPEN))
            .order_by(Outbox.id)
            .limit(limit)
            .with_for_update()
        )
        async with self._db.use(tx) as s:
            ids: list[int] = []
            for row_id, status, due in await s.execute(pick):
                if status != OutboxStatus.PENDING.value or due > now:
                    break
                ids.append(row_id)
            if not ids:
                return []
            return await _claim(s, ids, now)

    async def release(self, ids: list[int], *, tx: AsyncSession | None = None) -> None:
        """Return claimed rows that were not tried to ``pending``, their attempt uncounted."""
        if not ids:
            return
        stmt = (
            update(Outbox)
            .where(Outbox.id.in_(ids), Outbox.status == OutboxStatus.SENDING.value)
            .values(
                status=OutboxStatus.PENDING.value,
                attempts=Outbox.attempts - 1,
                updated_at=self._clock(),
            )
            .execution_options(synchronize_session=False)
        )
        async with self._db.use(tx) as s:
            await s.execute(stmt)

    async def set_payload(
        self, outbox_id: int, payload: str, *, tx: AsyncSession | None = None
    ) -> None:
        """Replace a row's payload (a sender noting what it is about to send)."""
        stmt = (
            update(Outbox)
            .where(Outbox.id == outbox_id)
            .values(payload=payload, updated_at=self._clock())
        )
        async with self._db.use(tx) as s:
            await s.execute(stmt)

    async def mark_done(self, outbox_id: int, *, tx: AsyncSession | None = None) -> None:
        """The delivery succeeded."""
        await self._set(outbox_id, OutboxStatus.DONE, tx=tx)

    async def mark_failed(
        self, outbox_id: int, error: str, *, tx: AsyncSession | None = None
    ) -> None:
        """Give up on the delivery, keeping ``error`` for the user-facing notice."""
        await self._set(outbox_id, OutboxStatus.FAILED, last_error=error, tx=tx)

    async def reschedule(
        self, outbox_id: int, next_attempt_at: int, error: str, *, tx: AsyncSession | None = None
    ) -> None:
        """Put the row back to ``pending`` for another attempt at ``next_attempt_at`` (ms)."""
        await self._set(
            outbox_id,
            OutboxStatus.PENDING,
            last_error=error,
            next_attempt_at=next_attempt_at,
            tx=tx,
        )

    async def requeue_failed(self, outbox_id: int, *, tx: AsyncSession | None = None) -> bool:
        """Give a ``failed`` row another go (an admin's ``retry``): pending, due now, with
        its attempts counted afresh. False if the row is gone or not failed."""
        now = self._clock()
        stmt = (
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.status == OutboxStatus.FAILED.value)
            .values(
                status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        async with self._db.use(tx) as s:
            return await execute_count(s, stmt) == 1

    async def requeue_stale(
        self, *, older_than: int | None = None, tx: AsyncSession | None = None
    ) -> int:
        """Return ``sending`` rows to ``pending`` (due now); returns how many.

        At startup call it without ``older_than``: no sender is running, so every ``sending``
        row was interrupted by a crash. With ``older_than`` (ms) only rows claimed before
        then are requeued. The attempt already counted stays counted.
        """
        now = self._clock()
        stmt = (
            update(Outbox)
            .where(Outbox.status == OutboxStatus.SENDING.value)
            .values(status=OutboxStatus.PENDING.value, next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if older_than is not None:
            stmt = stmt.where(Outbox.updated_at < older_than)
        async with self._db.use(tx) as s:
            count = await execute_count(s, stmt)
        if count:
            log.info("requeued %d interrupted outbox deliveries", count)
        return count

    async def prune_done(self, older_than: int, *, tx: AsyncSession | None = None) -> int:
        """Delete delivered rows last updated before ``older_than`` (ms); returns how many.

        Failed rows are kept: they explain to an admin what never reached Session.
        """
        stmt = delete(Outbox).where(
            Outbox.status == OutboxStatus.DONE.value, Outbox.updated_at < older_than
        )
        async with self._db.use(tx) as s:
            return await execute_count(s, stmt)

    async def count_by_status(self, *, tx: AsyncSession | None = None) -> dict[OutboxStatus, int]:
        """How many rows are in each status (for metrics and the status command)."""
        stmt = select(Outbox.status, func.count()).group_by(Outbox.status)
        async with self._db.use(tx) as s:
            counts = {OutboxStatus(status): int(n) for status, n in await s.execute(stmt)}
        return {status: counts.get(status, 0) for status in OutboxStatus}

    async def _set(
        self,
        outbox_id: int,
        status: OutboxStatus,
        *,
        last_error: str | None = None,
        next_attempt_at: int | None = None,
        tx: AsyncSession | None = None,
    ) -> None:
        values: dict[str, object] = {"status": status.value, "updated_at": self._clock()}
        if last_error is not None:
            values["last_error"] = last_error
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        stmt = (
            update(Outbox)
            .where(Outbox.id == outbox_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        async with self._db.use(tx) as s:
            if not await execute_count(s, stmt):
                raise LookupError(f"outbox row {outbox_id} does not exist")


async def _claim(s: AsyncSession, ids: list[int], now: int) -> list[OutboxRecord]:
    """Mark the still-pending rows among ``ids`` ``sending`` with one more attempt, and return
    the rows claimed, oldest first."""
    claim = (
        update(Outbox)
        .where(Outbox.id.in_(ids), Outbox.status == OutboxStatus.PENDING.value)
        .values(status=OutboxStatus.SENDING.value, attempts=Outbox.attempts + 1, updated_at=now)
        .returning(Outbox.id)
        .execution_options(synchronize_session=False)
    )
    claimed = list((await s.scalars(claim)).all())
    if not claimed:
        return []
    rows = await s.scalars(select_fresh(Outbox).where(Outbox.id.in_(claimed)).order_by(Outbox.id))
    return [_record(row) for row in rows]
