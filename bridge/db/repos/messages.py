"""Message and reaction mappings between Matrix events and Session messages."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import Message, Reaction
from bridge.db.records import MessageRecord, ReactionRecord
from bridge.db.repos._sql import execute_count, insert_ignore, select_fresh


def _message(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        portal_id=row.portal_id,
        mxid=row.mxid,
        session_key=row.session_key,
        part=row.part,
        sender_session_id=row.sender_session_id,
        sender_mxid=row.sender_mxid,
        timestamp=row.timestamp,
        edit_count=row.edit_count,
    )


def _reaction(row: Reaction) -> ReactionRecord:
    return ReactionRecord(
        id=row.id,
        portal_id=row.portal_id,
        mxid=row.mxid,
        target_message_id=row.target_message_id,
        sender=row.sender,
        emoji=row.emoji,
    )


class MessageRepo:
    """Reads and writes ``message`` and ``reaction``.

    ``session_key`` is the dedup key of the Session message: the swarm message hash, the
    community message id, or ``author|sent_ts``. It is ``None`` for an outbound message until
    the Session side has accepted it (see :meth:`set_session_key`).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_message(
        self,
        portal_id: int,
        mxid: str,
        session_key: str | None,
        *,
        timestamp: int,
        part: int = 0,
        sender_session_id: str | None = None,
        sender_mxid: str | None = None,
        tx: AsyncSession | None = None,
    ) -> MessageRecord | None:
        """Record a mapping; ``None`` if the event id or ``(portal, session_key, part)`` exists."""
        values = {
            "portal_id": portal_id,
            "mxid": mxid,
            "session_key": session_key,
            "part": part,
            "sender_session_id": sender_session_id,
            "sender_mxid": sender_mxid,
            "timestamp": timestamp,
            "edit_count": 0,
        }
        async with self._db.use(tx) as s:
            stmt = insert_ignore(s, Message, values).returning(Message.id)
            new_id = (await s.execute(stmt)).scalar_one_or_none()
            if new_id is None:
                return None
            row = await s.get(Message, new_id, populate_existing=True)
            return None if row is None else _message(row)

    async def get_by_id(
        self, message_id: int, *, tx: AsyncSession | None = None
    ) -> MessageRecord | None:
        """The mapping with this row id, if any."""
        async with self._db.use(tx) as s:
            row = await s.get(Message, message_id, populate_existing=True)
            return None if row is None else _message(row)

    async def get_by_mxid(
        self, mxid: str, *, tx: AsyncSession | None = None
    ) -> MessageRecord | None:
        """The mapping of a Matrix event, if any."""
        async with self._db.use(tx) as s:
            row = (
                await s.scalars(select_fresh(Message).where(Message.mxid == mxid))
            ).one_or_none()
            return None if row is None else _message(row)

    async def get_by_session_key(
        self, portal_id: int, session_key: str, part: int = 0, *, tx: AsyncSession | None = None
    ) -> MessageRecord | None:
        """The mapping of one part of a Session message in a portal, if any."""
        stmt = select_fresh(Message).where(
            Message.portal_id == portal_id,
            Message.session_key == session_key,
            Message.part == part,
        )
        async with self._db.read(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _message(row)

    async def find_by_author_time(
        self,
        portal_id: int,
        sender_session_id: str,
        timestamp: int,
        *,
        tx: AsyncSession | None = None,
    ) -> MessageRecord | None:
        """The first part of the message ``sender_session_id`` sent at ``timestamp`` (ms): how
        Session quotes, reactions and unsends name their target."""
        stmt = (
            select_fresh(Message)
            .where(
                Message.portal_id == portal_id,
                Message.sender_session_id == sender_session_id,
                Message.timestamp == timestamp,
            )
            .order_by(Message.part)
            .limit(1)
        )
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _message(row)

    async def get_parts(
        self, portal_id: int, session_key: str, *, tx: AsyncSession | None = None
    ) -> list[MessageRecord]:
        """Every part of a Session message in a portal, in part order."""
        stmt = (
            select_fresh(Message)
            .where(Message.portal_id == portal_id, Message.session_key == session_key)
            .order_by(Message.part)
        )
        async with self._db.use(tx) as s:
            return [_message(row) for row in await s.scalars(stmt)]

    async def set_session_key(
        self, message_id: int, session_key: str, *, tx: AsyncSession | None = None
    ) -> None:
        """Fill in the Session key of an outbound message once the network accepted it."""
        stmt = update(Message).where(Message.id == message_id).values(session_key=session_key)
        async with self._db.use(tx) as s:
            await s.execute(stmt)

    async def bump_edit_count(self, message_id: int, *, tx: AsyncSession | None = None) -> int:
        """Count one more edit of the message; returns the new count."""
        stmt = (
            update(Message)
            .where(Message.id == message_id)
            .values(edit_count=Message.edit_count + 1)
            .returning(Message.edit_count)
        )
        async with self._db.use(tx) as s:
            return (await s.execute(stmt)).scalar_one()

    async def delete_message(self, message_id: int, *, tx: AsyncSession | None = None) -> bool:
        """Forget a mapping (and its reactions). True if it existed."""
        async with self._db.use(tx) as s:
            return bool(await execute_count(s, delete(Message).where(Message.id == message_id)))

    async def add_reaction(
        self,
        portal_id: int,
        mxid: str,
        target_message_id: int,
        sender: str,
        emoji: str,
        *,
        tx: AsyncSession | None = None,
    ) -> ReactionRecord | None:
        """Record a reaction; ``None`` if its event id or ``(target, sender, emoji)`` exists."""
        values = {
            "portal_id": portal_id,
            "mxid": mxid,
            "target_message_id": target_message_id,
            "sender": sender,
            "emoji": emoji,
        }
        async with self._db.use(tx) as s:
            stmt = insert_ignore(s, Reaction, values).returning(Reaction.id)
            new_id = (await s.execute(stmt)).scalar_one_or_none()
            if new_id is None:
                return None
            row = await s.get(Reaction, new_id, populate_existing=True)
            return None if row is None else _reaction(row)

    async def find_reaction(
        self, target_message_id: int, sender: str, emoji: str, *, tx: AsyncSession | None = None
    ) -> ReactionRecord | None:
        """The reaction of ``sender`` (Session ID or mxid) with ``emoji`` on a message."""
        stmt = select_fresh(Reaction).where(
            Reaction.target_message_id == target_message_id,
            Reaction.sender == sender,
            Reaction.emoji == emoji,
        )
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _reaction(row)

    async def get_reaction_by_mxid(
        self, mxid: str, *, tx: AsyncSession | None = None
    ) -> ReactionRecord | None:
        """The reaction mapped to a Matrix event, if any."""
        async with self._db.use(tx) as s:
            stmt = select_fresh(Reaction).where(Reaction.mxid == mxid)
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _reaction(row)

    async def list_reactions(
        self, target_message_id: int, *, tx: AsyncSession | None = None
    ) -> list[ReactionRecord]:
        """All reactions on a message, oldest first."""
        stmt = (
            select_fresh(Reaction)
            .where(Reaction.target_message_id == target_message_id)
            .order_by(Reaction.id)
        )
        async with self._db.read(tx) as s:
            return [_reaction(row) for row in await s.scalars(stmt)]

    async def remove_reaction(self, reaction_id: int, *, tx: AsyncSession | None = None) -> bool:
        """Forget a reaction. True if it existed."""
        async with self._db.use(tx) as s:
            return bool(await execute_count(s, delete(Reaction).where(Reaction.id == reaction_id)))
