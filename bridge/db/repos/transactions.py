"""Appservice transactions already received from the homeserver."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import AppserviceTxn
from bridge.db.records import now_ms
from bridge.db.repos._sql import Clock, execute_count, insert_ignore


class TransactionRepo:
    """Reads and writes ``appservice_txn``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def claim_transaction(
        self, txn_id: str, body_hash: str, *, tx: AsyncSession | None = None
    ) -> bool:
        """Record a transaction; True if new, False if this id with this body was seen.

        The body hash is part of the key because Synapse on SQLite reuses transaction ids
        after a restart. Concurrent claims of the same pair: exactly one gets True.
        """
        values = {"txn_id": txn_id, "body_hash": body_hash, "received_at": self._clock()}
        async with self._db.use(tx) as s:
            return await execute_count(s, insert_ignore(s, AppserviceTxn, values)) == 1

    async def latest_ids(self, limit: int, *, tx: AsyncSession | None = None) -> list[str]:
        """The ids of the ``limit`` transactions stored last, oldest first (not the
        ephemeral part kept of a refused one, bridge/matrix/txn_gaps.py)."""
        stmt = (
            select(AppserviceTxn.txn_id, AppserviceTxn.received_at)
            .where(AppserviceTxn.body_hash.not_like("%:ephemeral"))
            .order_by(AppserviceTxn.received_at.desc())
            .limit(limit)
        )
        async with self._db.use(tx) as s:
            rows = [(txn_id, at) for txn_id, at in (await s.execute(stmt)).all()]
        # Transactions stored in the same millisecond: the homeserver's numbers order them.
        rows.sort(key=lambda row: (row[1], len(row[0]), row[0]))
        return [txn_id for txn_id, _ in rows]

    async def prune_transactions(self, older_than: int, *, tx: AsyncSession | None = None) -> int:
        """Forget transactions received before ``older_than`` (ms); returns how many."""
        stmt = delete(AppserviceTxn).where(AppserviceTxn.received_at < older_than)
        async with self._db.use(tx) as s:
            return await execute_count(s, stmt)
