"""The identity map (Session ID ↔ Matrix ID) and the one-time link codes (docs/migration.md).

``identity_link`` holds the relations made by ``link`` and bridge-made identities; the logins
in ``session_login`` are part of the map too, read from there as kind ``login`` (never copied),
so the map cannot disagree with the logins.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Subquery, and_, delete, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import IdentityLink, LinkCode, Message, Reaction, SessionLogin
from bridge.db.records import MessageRecord, ReactionRecord, now_ms
from bridge.db.repos._sql import Clock, execute_count, insert_ignore, select_fresh
from bridge.db.repos.messages import _message, _reaction


class IdentityKind(StrEnum):
    """How the bridge knows that a Session ID belongs to a Matrix user."""

    LOGIN = "login"  # the user gave the bridge the recovery phrase
    LINK = "link"  # proven with a one-time code, no phrase
    BRIDGE_IDENTITY = "bridge_identity"  # an identity the bridge made for a Matrix user


class CodeOrigin(StrEnum):
    """Where a link was asked for: on Matrix (`link <Session ID>`) or on Session."""

    MATRIX = "matrix"
    SESSION = "session"


class Redeemed(StrEnum):
    """What redeeming a code did."""

    LINKED = "linked"
    SPENT = "spent"  # used or expired meanwhile
    TAKEN = "taken"  # the Session ID belongs to another Matrix user


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    session_id: str
    mxid: str
    kind: IdentityKind
    created_at: int


@dataclass(frozen=True, slots=True)
class LinkCodeRecord:
    id: int
    origin: CodeOrigin
    code_hash: str
    mxid: str
    session_id: str
    room_id: str | None
    created_at: int
    expires_at: int
    used_at: int | None


def _code(row: LinkCode) -> LinkCodeRecord:
    return LinkCodeRecord(
        id=row.id,
        origin=CodeOrigin(row.origin),
        code_hash=row.code_hash,
        mxid=row.mxid,
        session_id=row.session_id,
        room_id=row.room_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def _map_query() -> Subquery:
    """Logins (kind login) and stored links, as one selectable."""
    logins = select(
        SessionLogin.session_id.label("session_id"),
        SessionLogin.mxid.label("mxid"),
        literal(IdentityKind.LOGIN.value).label("kind"),
        SessionLogin.created_at.label("created_at"),
    ).where(SessionLogin.is_bot.is_(False), SessionLogin.mxid.is_not(None))
    links = select(
        IdentityLink.session_id, IdentityLink.mxid, IdentityLink.kind, IdentityLink.created_at
    )
    return union_all(logins, links).subquery("identity_map")


class LinkRepo:
    """Reads and writes ``identity_link`` and ``link_code``; reads ``session_login``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def identities(
        self,
        *,
        mxid: str | None = None,
        session_ids: list[str] | None = None,
        tx: AsyncSession | None = None,
    ) -> list[IdentityRecord]:
        """The identity map (logins first, then links, each oldest first), optionally only
        one Matrix user's relations or only those of some Session IDs."""
        view = _map_query()
        stmt = select(view.c.session_id, view.c.mxid, view.c.kind, view.c.created_at)
        if mxid is not None:
            stmt = stmt.where(view.c.mxid == mxid)
        if session_ids is not None:
            stmt = stmt.where(view.c.session_id.in_(session_ids))
        stmt = stmt.order_by(view.c.kind != IdentityKind.LOGIN.value, view.c.created_at)
        async with self._db.use(tx) as s:
            rows = (await s.execute(stmt)).all()
        return [IdentityRecord(r[0], r[1], IdentityKind(r[2]), int(r[3])) for r in rows]

    async def owner_of(
        self, session_id: str, *, tx: AsyncSession | None = None
    ) -> IdentityRecord | None:
        """The Matrix user ``session_id`` belongs to (a login wins over a link), if any."""
        found = await self.identities(session_ids=[session_id], tx=tx)
        return found[0] if found else None

    async def counts_by_kind(self, *, tx: AsyncSession | None = None) -> dict[IdentityKind, int]:
        """How many relations of each kind the map holds."""
        view = _map_query()
        stmt = select(view.c.kind, func.count()).group_by(view.c.kind)
        async with self._db.use(tx) as s:
            rows = (await s.execute(stmt)).all()
        counts = dict.fromkeys(IdentityKind, 0)
        counts.update({IdentityKind(kind): int(n) for kind, n in rows})
        return counts

    async def add_link(
        self,
        session_id: str,
        mxid: str,
        kind: IdentityKind = IdentityKind.LINK,
        *,
        tx: AsyncSession | None = None,
    ) -> IdentityRecord | None:
        """Record the relation; None if ``session_id`` is already another user's relation.
        Adding the same relation again returns the stored one."""
        if kind is IdentityKind.LOGIN:
            raise ValueError("logins are read from session_login, never stored as links")
        values = {
            "session_id": session_id,
            "mxid": mxid,
            "kind": kind.value,
            "created_at": self._clock(),
        }
        async with self._db.use(tx) as s:
            await s.execute(insert_ignore(s, IdentityLink, values))
            row = (
                await s.scalars(
                    select_fresh(IdentityLink).where(IdentityLink.session_id == session_id)
                )
            ).one()
        if row.mxid != mxid:
            return None
        return IdentityRecord(row.session_id, row.mxid, IdentityKind(row.kind), row.created_at)

    async def remove_links(
        self,
        mxid: str,
        session_id: str | None = None,
        *,
        kind: IdentityKind = IdentityKind.LINK,
        tx: AsyncSession | None = None,
    ) -> list[str]:
        """Remove ``mxid``'s relations of ``kind`` (links by default; one if ``session_id``
        is given) and return their Session IDs."""
        where = [IdentityLink.mxid == mxid, IdentityLink.kind == kind.value]
        if session_id is not None:
            where.append(IdentityLink.session_id == session_id)
        stmt = delete(IdentityLink).where(*where).returning(IdentityLink.session_id)
        async with self._db.use(tx) as s:
            return sorted(str(sid) for sid in (await s.scalars(stmt)).all())

    async def portals_with_authors(
        self, session_ids: list[str], since: int, *, tx: AsyncSession | None = None
    ) -> list[int]:
        """The portals (ids) where any of ``session_ids`` wrote a bridged message at or after
        ``since`` (where a linked person is active, docs/migration.md §2)."""
        if not session_ids:
            return []
        stmt = (
            select(Message.portal_id)
            .where(Message.sender_session_id.in_(session_ids), Message.timestamp >= since)
            .distinct()
            .order_by(Message.portal_id)
        )
        async with self._db.use(tx) as s:
            return [int(pid) for pid in (await s.scalars(stmt)).all()]

    async def last_written(
        self, portal_id: int, *, tx: AsyncSession | None = None
    ) -> dict[str, int]:
        """Each Session author of the portal's bridged messages → when they last wrote. Only
        messages that came from Session count: a Matrix user's message (relayed by the bot, or
        sent as their login or bridge-made identity) names its Session sender too, but that
        person is on Matrix."""
        stmt = (
            select(Message.sender_session_id, func.max(Message.timestamp))
            .where(
                Message.portal_id == portal_id,
                Message.sender_session_id.is_not(None),
                Message.sender_mxid.is_(None),
            )
            .group_by(Message.sender_session_id)
        )
        async with self._db.use(tx) as s:
            rows = (await s.execute(stmt)).all()
        return {str(sid): int(ts) for sid, ts in rows}

    async def history(
        self, portal_id: int, limit: int, *, tx: AsyncSession | None = None
    ) -> tuple[list[MessageRecord], list[ReactionRecord]]:
        """The portal's bridged messages (oldest first, at most ``limit``, the newest kept)
        and the reactions to them (for ``export``)."""
        newest = (
            select_fresh(Message)
            .where(Message.portal_id == portal_id)
            .order_by(Message.timestamp.desc(), Message.id.desc())
            .limit(limit)
        )
        async with self._db.use(tx) as s:
            messages = [_message(row) for row in await s.scalars(newest)]
            ids = [m.id for m in messages]
            reactions = (
                [
                    _reaction(row)
                    for row in await s.scalars(
                        select_fresh(Reaction)
                        .where(Reaction.target_message_id.in_(ids))
                        .order_by(Reaction.id)
                    )
                ]
                if ids
                else []
            )
        messages.reverse()
        return messages, reactions

    async def add_code(
        self,
        origin: CodeOrigin,
        code_hash: str,
        *,
        mxid: str,
        session_id: str,
        ttl_ms: int,
        room_id: str | None = None,
        tx: AsyncSession | None = None,
    ) -> LinkCodeRecord:
        """Store a new code (its hash only), valid for ``ttl_ms``."""
        now = self._clock()
        row = LinkCode(
            origin=origin.value,
            code_hash=code_hash,
            mxid=mxid,
            session_id=session_id,
            room_id=room_id,
            created_at=now,
            expires_at=now + ttl_ms,
            used_at=None,
        )
        async with self._db.use(tx) as s:
            s.add(row)
            await s.flush()
            return _code(row)

    async def codes_for(
        self,
        origin: CodeOrigin,
        *,
        mxid: str | None = None,
        session_id: str | None = None,
        tx: AsyncSession | None = None,
    ) -> list[LinkCodeRecord]:
        """Every stored code of ``origin`` for this Matrix user and/or Session ID, spent
        ones too (so that a reused or late code is told why), newest first."""
        stmt = select_fresh(LinkCode).where(LinkCode.origin == origin.value)
        if mxid is not None:
            stmt = stmt.where(LinkCode.mxid == mxid)
        if session_id is not None:
            stmt = stmt.where(LinkCode.session_id == session_id)
        async with self._db.use(tx) as s:
            rows = await s.scalars(stmt.order_by(LinkCode.id.desc()))
            return [_code(row) for row in rows]

    async def codes_made_since(
        self,
        origin: CodeOrigin,
        requester: str,
        since: int,
        *,
        tx: AsyncSession | None = None,
    ) -> int:
        """How many codes ``requester`` (the Matrix user for origin matrix, the Session ID
        for origin session) asked for after ``since`` (the rate limit)."""
        column = LinkCode.mxid if origin is CodeOrigin.MATRIX else LinkCode.session_id
        stmt = select(func.count()).where(
            LinkCode.origin == origin.value, column == requester, LinkCode.created_at > since
        )
        async with self._db.use(tx) as s:
            return int((await s.execute(stmt)).scalar_one())

    async def redeem(self, code: LinkCodeRecord, *, tx: AsyncSession | None = None) -> Redeemed:
        """Spend ``code`` and record its link, in one transaction: a code is spent once
        (a concurrent second use finds it spent), and never for a Session ID that is
        another Matrix user's relation (then it stays unspent)."""
        async with self._db.use(tx) as s:
            owner = await self.owner_of(code.session_id, tx=s)
            if owner is not None and owner.mxid != code.mxid:
                return Redeemed.TAKEN
            now = self._clock()
            spend = (
                update(LinkCode)
                .where(
                    and_(
                        LinkCode.id == code.id,
                        LinkCode.used_at.is_(None),
                        LinkCode.expires_at > now,
                    )
                )
                .values(used_at=now)
            )
            if await execute_count(s, spend) != 1:
                return Redeemed.SPENT
            if owner is None and await self.add_link(code.session_id, code.mxid, tx=s) is None:
                raise RuntimeError("the Session ID was linked concurrently")  # rolls back
        return Redeemed.LINKED

    async def prune_codes(self, before: int, *, tx: AsyncSession | None = None) -> int:
        """Delete codes that expired before ``before``; returns how many."""
        async with self._db.use(tx) as s:
            return await execute_count(s, delete(LinkCode).where(LinkCode.expires_at < before))
