"""Appservice transactions already received from the homeserver."""

from __future__ import annotations

from sqlalchemy import delete
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

    async def prune_transactions(self, older_than: int, *, tx: AsyncSession | None = None) -> int:
        """Forget transactions received before ``older_than`` (ms); returns how many."""
        stmt = delete(AppserviceTxn).where(AppserviceTxn.received_at < older_than)
        async with self._db.use(tx) as s:
            return await execute_count(s, stmt)
