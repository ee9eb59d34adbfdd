"""Small key/value bridge state (e.g. the bot's setup flags)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import KeyValue
from bridge.db.repos._sql import execute_count, upsert


class KVRepo:
    """Reads and writes the ``kv`` table. Values are text; encode structure as JSON."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, *, tx: AsyncSession | None = None) -> str | None:
        """The value stored under ``key``, if any."""
        async with self._db.use(tx) as s:
            return (
                await s.execute(select(KeyValue.value).where(KeyValue.key == key))
            ).scalar_one_or_none()

    async def set(self, key: str, value: str, *, tx: AsyncSession | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        async with self._db.use(tx) as s:
            await s.execute(upsert(s, KeyValue, {"key": key, "value": value}, key=("key",)))

    async def delete(self, key: str, *, tx: AsyncSession | None = None) -> bool:
        """Remove ``key``; True if it existed."""
        async with self._db.use(tx) as s:
            return bool(await execute_count(s, delete(KeyValue).where(KeyValue.key == key)))

    async def items(self, prefix: str, *, tx: AsyncSession | None = None) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with ``prefix``, by key."""
        stmt = (
            select(KeyValue.key, KeyValue.value)
            .where(KeyValue.key.startswith(prefix, autoescape=True))
            .order_by(KeyValue.key)
        )
        async with self._db.use(tx) as s:
            return [(key, value) for key, value in (await s.execute(stmt)).all()]
