"""Counts for the metrics, read at scrape time (docs/operations.md §5.4).

Cheap by construction: the outbox's waiting rows are found through its ``(status,
next_attempt_at)`` index, the inbox's oldest row by its primary key; ``matrix_inbox`` holds
only events not yet handled, and ``dead_letter``, ``session_login`` and ``portal`` stay small
(one row per parked item, login and portal).
"""

from __future__ import annotations

from sqlalchemy import func, select

from bridge.db.engine import Database
from bridge.db.models import DeadLetter, MatrixInboxEvent, Outbox, Portal, SessionLogin
from bridge.db.records import BridgeStats, OutboxStatus, PortalKind

__all__ = ["StatsRepo"]

_WAITING = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)


class StatsRepo:
    """Reads the queue depths and counts in one read-only transaction. Portals count as the
    ``portals`` command lists them: with a Matrix room, not unbridged."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self) -> BridgeStats:
        inbox_depth = select(func.count()).select_from(MatrixInboxEvent)
        inbox_oldest = select(MatrixInboxEvent.received_at).order_by(MatrixInboxEvent.id).limit(1)
        outbox = select(func.count(), func.min(Outbox.created_at)).where(
            Outbox.status.in_(_WAITING)
        )
        dead = select(func.count()).select_from(DeadLetter)
        logins = (
            select(func.count())
            .select_from(SessionLogin)
            .where(SessionLogin.is_bot.is_(False), SessionLogin.mxid.is_not(None))
        )
        portals = (
            select(Portal.kind, func.count())
            .where(Portal.mxid.is_not(None), Portal.unbridged_at.is_(None))
            .group_by(Portal.kind)
        )
        async with self._db.transaction() as s:
            depth = int((await s.execute(inbox_depth)).scalar_one())
            oldest = (await s.execute(inbox_oldest)).scalar_one_or_none()
            out_depth, out_oldest = (await s.execute(outbox)).one()
            dead_count = int((await s.execute(dead)).scalar_one())
            login_count = int((await s.execute(logins)).scalar_one())
            by_kind = {PortalKind(kind): int(n) for kind, n in (await s.execute(portals)).all()}
        return BridgeStats(
            inbox_depth=depth,
            inbox_oldest_at=oldest,
            outbox_depth=int(out_depth),
            outbox_oldest_at=out_oldest,
            dead_letters=dead_count,
            logins=login_count,
            portals={kind: by_kind.get(kind, 0) for kind in PortalKind},
        )
