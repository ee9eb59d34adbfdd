"""Matrix users and their Session logins (the bot's own identity has no Matrix user)."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.db.models import MatrixUser, SessionLogin
from bridge.db.records import LoginRecord, MatrixUserRecord, now_ms
from bridge.db.repos._sql import Clock, execute_count, insert_ignore, select_fresh


def _user(row: MatrixUser) -> MatrixUserRecord:
    return MatrixUserRecord(
        mxid=row.mxid, management_room=row.management_room, created_at=row.created_at
    )


def _login(row: SessionLogin) -> LoginRecord:
    return LoginRecord(
        id=row.id,
        mxid=row.mxid,
        session_id=row.session_id,
        encrypted_seed=row.encrypted_seed,
        label=row.label,
        is_bot=row.is_bot,
        created_at=row.created_at,
    )


class UserRepo:
    """Reads and writes ``matrix_user`` and ``session_login``."""

    def __init__(self, db: Database, clock: Clock = now_ms) -> None:
        self._db = db
        self._clock = clock

    async def get_user(
        self, mxid: str, *, tx: AsyncSession | None = None
    ) -> MatrixUserRecord | None:
        """The Matrix user, if known."""
        async with self._db.use(tx) as s:
            row = await s.get(MatrixUser, mxid, populate_existing=True)
            return None if row is None else _user(row)

    async def ensure_user(self, mxid: str, *, tx: AsyncSession | None = None) -> MatrixUserRecord:
        """The Matrix user, created if unknown (safe against concurrent creation)."""
        values = {"mxid": mxid, "management_room": None, "created_at": self._clock()}
        async with self._db.use(tx) as s:
            await s.execute(insert_ignore(s, MatrixUser, values))
            found = await self.get_user(mxid, tx=s)
        if found is None:
            raise RuntimeError(f"matrix user {mxid} vanished right after insert")
        return found

    async def set_management_room(
        self, mxid: str, room_mxid: str | None, *, tx: AsyncSession | None = None
    ) -> MatrixUserRecord:
        """Set (or clear) the user's management room, creating the user if unknown."""
        async with self._db.use(tx) as s:
            await self.ensure_user(mxid, tx=s)
            stmt = (
                update(MatrixUser)
                .where(MatrixUser.mxid == mxid)
                .values(management_room=room_mxid)
                .returning(MatrixUser)
            )
            return _user((await s.scalars(stmt)).one())

    async def add_login(
        self,
        session_id: str,
        encrypted_seed: bytes,
        *,
        mxid: str | None,
        label: str | None = None,
        is_bot: bool = False,
        tx: AsyncSession | None = None,
    ) -> LoginRecord | None:
        """Store a Session identity for ``mxid`` (``None`` for the bot's own identity).

        Creates the Matrix user if needed. Returns ``None`` if the Session ID is already
        stored (for anyone): one Session account belongs to at most one login.
        """
        values = {
            "mxid": mxid,
            "session_id": session_id,
            "encrypted_seed": encrypted_seed,
            "label": label,
            "is_bot": is_bot,
            "created_at": self._clock(),
        }
        async with self._db.use(tx) as s:
            if mxid is not None:
                await self.ensure_user(mxid, tx=s)
            stmt = insert_ignore(s, SessionLogin, values).returning(SessionLogin.id)
            new_id = (await s.execute(stmt)).scalar_one_or_none()
            return None if new_id is None else await self.get_login(new_id, tx=s)

    async def get_login(
        self, login_id: int, *, tx: AsyncSession | None = None
    ) -> LoginRecord | None:
        """The login with this id, if any."""
        async with self._db.use(tx) as s:
            row = await s.get(SessionLogin, login_id, populate_existing=True)
            return None if row is None else _login(row)

    async def get_login_by_session_id(
        self, session_id: str, *, tx: AsyncSession | None = None
    ) -> LoginRecord | None:
        """The login holding this Session ID, if any."""
        stmt = select_fresh(SessionLogin).where(SessionLogin.session_id == session_id)
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt)).one_or_none()
            return None if row is None else _login(row)

    async def list_logins(self, mxid: str, *, tx: AsyncSession | None = None) -> list[LoginRecord]:
        """All logins of a Matrix user, oldest first."""
        stmt = (
            select_fresh(SessionLogin).where(SessionLogin.mxid == mxid).order_by(SessionLogin.id)
        )
        async with self._db.use(tx) as s:
            return [_login(row) for row in await s.scalars(stmt)]

    async def list_user_logins(self, *, tx: AsyncSession | None = None) -> list[LoginRecord]:
        """Every Matrix user's login (not the bot's, nor a bridge-made identity, which has
        no owner here: docs/migration.md §7), oldest first."""
        stmt = (
            select_fresh(SessionLogin)
            .where(SessionLogin.is_bot.is_(False), SessionLogin.mxid.is_not(None))
            .order_by(SessionLogin.id)
        )
        async with self._db.use(tx) as s:
            return [_login(row) for row in await s.scalars(stmt)]

    async def get_bot_login(self, *, tx: AsyncSession | None = None) -> LoginRecord | None:
        """The bot's own Session identity (the oldest if several), if created yet."""
        stmt = (
            select_fresh(SessionLogin)
            .where(SessionLogin.is_bot.is_(True))
            .order_by(SessionLogin.id)
        )
        async with self._db.use(tx) as s:
            row = (await s.scalars(stmt.limit(1))).one_or_none()
            return None if row is None else _login(row)

    async def remove_login(self, login_id: int, *, tx: AsyncSession | None = None) -> bool:
        """Delete a login; portals relaying through it lose their relay. True if it existed."""
        async with self._db.use(tx) as s:
            return bool(
                await execute_count(s, delete(SessionLogin).where(SessionLogin.id == login_id))
            )
