"""Bot messages that must be removed by a deadline (e.g. one showing a new recovery phrase).

Stored in the ``kv`` table under ``expiring:<event id>`` so that the deadline survives a
restart; the value is JSON ``{"room", "owner", "deadline"}`` (deadline in ms since the epoch).
"""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.records import ExpiringMessageRecord
from bridge.db.repos.kv import KVRepo

PREFIX = "expiring:"


def _record(key: str, value: str) -> ExpiringMessageRecord:
    data = json.loads(value)
    return ExpiringMessageRecord(
        event_id=key.removeprefix(PREFIX),
        room_id=str(data["room"]),
        owner=str(data["owner"]),
        deadline=int(data["deadline"]),
    )


class ExpiringMessageRepo:
    """The messages waiting to be redacted, with their deadlines."""

    def __init__(self, kv: KVRepo) -> None:
        self._kv = kv

    async def add(self, record: ExpiringMessageRecord, *, tx: AsyncSession | None = None) -> None:
        """Remember ``record`` (replacing one with the same event id)."""
        value = {"room": record.room_id, "owner": record.owner, "deadline": record.deadline}
        await self._kv.set(PREFIX + record.event_id, json.dumps(value), tx=tx)

    async def get(
        self, event_id: str, *, tx: AsyncSession | None = None
    ) -> ExpiringMessageRecord | None:
        value = await self._kv.get(PREFIX + event_id, tx=tx)
        return None if value is None else _record(PREFIX + event_id, value)

    async def remove(self, event_id: str, *, tx: AsyncSession | None = None) -> bool:
        """Forget ``event_id``; True if it was waiting."""
        return await self._kv.delete(PREFIX + event_id, tx=tx)

    async def list_all(self, *, tx: AsyncSession | None = None) -> list[ExpiringMessageRecord]:
        """Every waiting message, soonest deadline first."""
        records = [_record(k, v) for k, v in await self._kv.items(PREFIX, tx=tx)]
        return sorted(records, key=lambda r: r.deadline)

    async def list_of(
        self, owner: str, *, tx: AsyncSession | None = None
    ) -> list[ExpiringMessageRecord]:
        """The waiting messages shown to ``owner``."""
        return [r for r in await self.list_all(tx=tx) if r.owner == owner]
