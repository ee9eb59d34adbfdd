"""Portals: Matrix rooms bridged to Session conversations.

``session_key`` is the canonical key of the Session conversation: for a community
``https://host|room_token|server_pubkey``, for a direct chat
``our_session_id|peer_session_id``, for a group its ``03…`` id. Canonicalising it is the
caller's job (``bridge.ids``); this module only stores it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import Portal
from bridge.db.records import PortalKind, PortalRecord, now_ms
from bridge.db.repos._sql import Clock, insert_ignore, select_fresh

_MUTABLE = (
    "mxid",
    "name",
    "topic",
    "avatar_mxc",
    "avatar_hash",
    "relay_enabled",
    "relay_login_id",
    "encrypted",
    "unbridged_at",
)


def _record(row: Portal) -> PortalRecord:
    return PortalRecord(
        id=row.id,
        kind=PortalKind(row.kind),
        session_key=row.session_key,
        mxid=row.mxid,
        name=row.name,
        topic=row.topic,
        avatar_mxc=row.avatar_mxc,
        avatar_hash=row.avatar_hash,
        relay_enabled=row.relay_enabled,
        relay_login_id=row.relay_login_id,
        encrypted=row.encrypted,
        created_at=row.created_at,
        unbridged_at=row.unbridged_at,
    )


class PortalRepo:
    """Reads and writes the ``portal`` table."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def get_by_id(
        self, portal_id: int, *, tx: AsyncSession | None = None
    ) -> PortalRecord | None:
        """The portal with this id, if any."""
        async with self._db.read(tx) as s:
            row = await s.get(Portal, portal_id, populate_existing=True)
            return None if row is None else _record(row)

    async def get_many(
        self, portal_ids: Sequence[int], *, tx: AsyncSession | None = None
    ) -> dict[int, PortalRecord]:
        """The portals with these ids that exist, by id (one query)."""
        if not portal_ids:
            return {}
        stmt = select_fresh(Portal).where(Portal.id.in_(list(portal_ids)))
        async with self._db.use(tx) as s:
            return {row.id: _record(row) for row in await s.scalars(stmt)}

    async def get_by_key(
        self, kind: PortalKind, session_key: str, *, tx: AsyncSession | None = None
    ) -> PortalRecord | None:
        """The portal of a Session conversation, if any (also when unbridged)."""
        stmt = select_fresh(Portal).where(
            Portal.kind == kind.value, Portal.session_key == session_key
        )
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _record(row)

    async def get_by_mxid(
        self, mxid: str, *, tx: AsyncSession | None = None
    ) -> PortalRecord | None:
        """The portal of a Matrix room, if any."""
        async with self._db.read(tx) as s:
            row = (await s.scalars(select_fresh(Portal).where(Portal.mxid == mxid))).one_or_none()
            return None if row is None else _record(row)

    async def get_or_create(
        self,
        kind: PortalKind,
        session_key: str,
        *,
        name: str | None = None,
        tx: AsyncSession | None = None,
    ) -> PortalRecord:
        """The portal of a Session conversation, created (without a room yet) if missing.

        Safe against concurrent creation: the loser of a race gets the winner's row.
        """
        values = {
            "kind": kind.value,
            "session_key": session_key,
            "name": name,
            "relay_enabled": False,
            "encrypted": False,
            "created_at": self._clock(),
        }
        async with self._db.use(tx) as s:
            await s.execute(insert_ignore(s, Portal, values))
            found = await self.get_by_key(kind, session_key, tx=s)
        if found is None:
            raise RuntimeError(f"portal {kind}:{session_key} vanished right after insert")
        return found

    async def update(
        self, portal: PortalRecord, *, tx: AsyncSession | None = None
    ) -> PortalRecord:
        """Write every mutable field of ``portal`` (build it with ``dataclasses.replace``).

        ``id``, ``kind``, ``session_key`` and ``created_at`` are never changed. Raises
        ``LookupError`` if the portal does not exist.
        """
        values = {name: getattr(portal, name) for name in _MUTABLE}
        stmt = update(Portal).where(Portal.id == portal.id).values(values).returning(Portal)
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            if row is None:
                raise LookupError(f"portal {portal.id} does not exist")
            return _record(row)

    async def set_mxid(
        self, portal_id: int, mxid: str | None, *, tx: AsyncSession | None = None
    ) -> PortalRecord:
        """Attach a Matrix room to the portal (clearing ``unbridged_at``), or detach it."""
        async with self._db.use(tx) as s:
            portal = await self._require(portal_id, s)
            return await self.update(
                dataclasses.replace(portal, mxid=mxid, unbridged_at=None), tx=s
            )

    async def mark_unbridged(
        self, portal_id: int, *, tx: AsyncSession | None = None
    ) -> PortalRecord:
        """Mark the portal unbridged now; the row and its message mappings stay for history."""
        async with self._db.use(tx) as s:
            portal = await self._require(portal_id, s)
            return await self.update(dataclasses.replace(portal, unbridged_at=self._clock()), tx=s)

    async def list_active(
        self, kind: PortalKind | None = None, *, tx: AsyncSession | None = None
    ) -> list[PortalRecord]:
        """Portals with a Matrix room that are not unbridged, optionally of one kind."""
        stmt = select_fresh(Portal).where(Portal.mxid.is_not(None), Portal.unbridged_at.is_(None))
        if kind is not None:
            stmt = stmt.where(Portal.kind == kind.value)
        async with self._db.use(tx) as s:
            rows = await s.scalars(stmt.order_by(Portal.id))
            return [_record(row) for row in rows]

    async def _require(self, portal_id: int, s: AsyncSession) -> PortalRecord:
        portal = await self.get_by_id(portal_id, tx=s)
        if portal is None:
            raise LookupError(f"portal {portal_id} does not exist")
        return portal
