"""Ghosts: the Matrix users that stand for Session accounts."""

from __future__ import annotations

import dataclasses

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import Ghost
from bridge.db.records import GhostRecord, now_ms
from bridge.db.repos._sql import Clock, select_fresh, upsert


def _record(row: Ghost) -> GhostRecord:
    return GhostRecord(
        session_id=row.session_id,
        mxid=row.mxid,
        displayname=row.displayname,
        avatar_mxc=row.avatar_mxc,
        avatar_hash=row.avatar_hash,
        name_set=row.name_set,
        registered=row.registered,
        updated_at=row.updated_at,
    )


class GhostRepo:
    """Reads and writes the ``ghost`` table."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def get(self, session_id: str, *, tx: AsyncSession | None = None) -> GhostRecord | None:
        """The ghost of a Session account, if any."""
        async with self._db.use(tx) as s:
            row = await s.get(Ghost, session_id, populate_existing=True)
            return None if row is None else _record(row)

    async def get_by_mxid(
        self, mxid: str, *, tx: AsyncSession | None = None
    ) -> GhostRecord | None:
        """The ghost with this Matrix id, if any."""
        async with self._db.use(tx) as s:
            row = (await s.scalars(select_fresh(Ghost).where(Ghost.mxid == mxid))).one_or_none()
            return None if row is None else _record(row)

    async def name_taken(
        self, displayname: str, by_other_than: str, *, tx: AsyncSession | None = None
    ) -> bool:
        """Whether a ghost other than ``by_other_than`` already has ``displayname``."""
        stmt = select(
            exists().where(Ghost.displayname == displayname, Ghost.session_id != by_other_than)
        )
        async with self._db.use(tx) as s:
            return bool((await s.execute(stmt)).scalar())

    async def upsert(self, ghost: GhostRecord, *, tx: AsyncSession | None = None) -> GhostRecord:
        """Insert or fully overwrite the ghost; ``updated_at`` is set to now. Returns the row."""
        stored = dataclasses.replace(ghost, updated_at=self._clock())
        values = dataclasses.asdict(stored)
        async with self._db.use(tx) as s:
            await s.execute(upsert(s, Ghost, values, key=("session_id",)))
        return stored
