"""Groups v2 state of each Session identity the bridge runs: memberships (invites, promotions,
accepted, ended) and the received keys/config messages (ns 12-14), kept as received bytes
(docs/groups-v2.md §7). Poll cursors and seen hashes live in the cursor repository
(:mod:`bridge.db.repos.cursors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import GroupMembership, GroupRawMessage
from bridge.db.records import now_ms
from bridge.db.repos._sql import Clock, insert_ignore, select_fresh, upsert

__all__ = ["GroupMembershipRecord", "GroupRawRecord", "GroupRepo", "GroupTx"]

_MEMBERSHIP_KEY = ("session_id", "group_id")
#: The transaction a call joins (None: its own), as callers outside bridge/db name it.
GroupTx = AsyncSession | None


@dataclass(frozen=True)
class GroupMembershipRecord:
    """One identity's membership of one group (a row of ``group_membership``)."""

    session_id: str
    group_id: str
    name: str
    auth_data: bytes = field(default=b"", repr=False)
    seed: bytes | None = field(default=None, repr=False)
    inviter: str = ""
    invite_timestamp: int = 0
    accepted: bool = False
    removed: bool = False


@dataclass(frozen=True)
class GroupRawRecord:
    """A received keys/config message of one group, as one identity received it."""

    namespace: int
    hash: str
    timestamp: int
    expiry: int
    data: bytes = field(repr=False)


def _membership(row: GroupMembership) -> GroupMembershipRecord:
    return GroupMembershipRecord(
        session_id=row.session_id,
        group_id=row.group_id,
        name=row.name,
        auth_data=row.auth_data,
        seed=row.seed,
        inviter=row.inviter,
        invite_timestamp=row.invite_timestamp,
        accepted=row.accepted,
        removed=row.removed,
    )


class GroupRepo:
    """Reads and writes ``group_membership`` and ``group_raw_message``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def save_membership(
        self, record: GroupMembershipRecord, *, tx: AsyncSession | None = None
    ) -> None:
        """Insert or replace the membership of (``session_id``, ``group_id``)."""
        values = {
            "session_id": record.session_id,
            "group_id": record.group_id,
            "name": record.name,
            "auth_data": record.auth_data,
            "seed": record.seed,
            "inviter": record.inviter,
            "invite_timestamp": record.invite_timestamp,
            "accepted": record.accepted,
            "removed": record.removed,
            "updated_at": self._clock(),
        }
        async with self._db.use(tx) as s:
            await s.execute(upsert(s, GroupMembership, values, key=_MEMBERSHIP_KEY))

    async def memberships(
        self, session_id: str | None = None, *, tx: AsyncSession | None = None
    ) -> list[GroupMembershipRecord]:
        """Every membership of ``session_id`` (of every identity when None), by group id."""
        stmt = select_fresh(GroupMembership).order_by(
            GroupMembership.session_id, GroupMembership.group_id
        )
        if session_id is not None:
            stmt = stmt.where(GroupMembership.session_id == session_id)
        async with self._db.use(tx) as s:
            return [_membership(row) for row in await s.scalars(stmt)]

    async def membership(
        self, session_id: str, group_id: str, *, tx: AsyncSession | None = None
    ) -> GroupMembershipRecord | None:
        """The membership of ``session_id`` in ``group_id``, if any."""
        async with self._db.use(tx) as s:
            row = await s.get(GroupMembership, (session_id, group_id), populate_existing=True)
            return None if row is None else _membership(row)

    async def add_raw(
        self,
        session_id: str,
        group_id: str,
        message: GroupRawRecord,
        *,
        tx: AsyncSession | None = None,
    ) -> bool:
        """Keep a received message (once per hash); True if it was new."""
        values = {
            "session_id": session_id,
            "group_id": group_id,
            "hash": message.hash,
            "namespace": message.namespace,
            "timestamp": message.timestamp,
            "expiry": message.expiry,
            "data": message.data,
        }
        async with self._db.use(tx) as s:
            result = await s.execute(insert_ignore(s, GroupRawMessage, values))
            return bool(getattr(result, "rowcount", 0) == 1)

    async def raw_messages(
        self, session_id: str, group_id: str, *, tx: AsyncSession | None = None
    ) -> list[GroupRawRecord]:
        """Every kept message of the group, in the order received."""
        stmt = (
            select_fresh(GroupRawMessage)
            .where(GroupRawMessage.session_id == session_id)
            .where(GroupRawMessage.group_id == group_id)
            .order_by(GroupRawMessage.id)
        )
        async with self._db.use(tx) as s:
            return [
                GroupRawRecord(r.namespace, r.hash, r.timestamp, r.expiry, r.data)
                for r in await s.scalars(stmt)
            ]
