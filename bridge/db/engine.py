"""Async engine, session factory and transactions for the bridge database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger("bridge.db.engine")

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long a transaction may wait for the bridge's one SQLite connection.
SQLITE_CONNECTION_WAIT_S = 120
# How long closing a connection a stopped task left open may take before stopping gives up.
ABANDONED_CLOSE_WAIT_S = 5.0
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10
PG_POOL_RECYCLE_S = 1800


def _sqlite_on_connect(foreign_keys: bool) -> Callable[[Any, ConnectionPoolEntry], None]:
    """Build the connect hook that sets the per-connection SQLite pragmas."""

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin: the
        # module's implicit BEGIN is deferred and cannot be made IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY (without
    # waiting for busy_timeout) when another connection wrote in between. Taking the write
    # lock up front makes concurrent writers queue instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, foreign_keys: bool = True, echo: bool = False) -> AsyncEngine:
    """Create an async engine for ``url`` with the bridge's per-backend settings.

    SQLite gets WAL, ``busy_timeout`` and ``foreign_keys`` (disabled only for migrations,
    where SQLite's table rebuilds would otherwise cascade deletes); PostgreSQL gets a bounded
    pool with recycling. No pre-ping: it would cost a round trip on every transaction. A
    connection that died with the server fails its first statement instead, which invalidates
    the pool and is a transient failure (docs/architecture.md §4.7): the next try connects
    afresh.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # One connection: SQLite has one writer at a time, and with BEGIN IMMEDIATE every
        # transaction is a writer, so more connections bring no concurrency, only contention.
        # Several connections polled the lock in SQLite's busy handler, which is not fair: on
        # a loaded machine one of them lost every turn for the whole busy_timeout and failed
        # with "database is locked". With one connection, transactions wait their turn in the
        # pool's queue, in order. busy_timeout still covers other processes (alembic, admin
        # scripts) writing the same file.
        in_memory = parsed.database in (None, "", ":memory:")  # one shared connection already
        one_connection: dict[str, Any] = (
            {}
            if in_memory
            else {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_CONNECTION_WAIT_S}
        )
        engine = create_async_engine(parsed, echo=echo, **one_connection)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect(foreign_keys))
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_recycle=PG_POOL_RECYCLE_S,
    )


class Database:
    """The bridge database: one async engine and its session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Single-statement reads on PostgreSQL run without BEGIN and COMMIT (two round trips
        # of three); SQLite keeps its transactions (its BEGIN IMMEDIATE hook, above).
        self._reads = (
            async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
            )
            if engine.dialect.name == "postgresql"
            else self._sessions
        )
        # SQLite connections checked out now: one a stop left behind (a step past its time
        # limit, docs/architecture.md §4.7) would keep the file's write lock after the engine
        # is disposed, and the next start in this process would find the database locked.
        self._held: set[ConnectionPoolEntry] = set()
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "checkout", self._checked_out)
            event.listen(engine.sync_engine, "checkin", self._checked_in)

    def _checked_out(self, _dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        self._held.add(record)

    def _checked_in(self, _dbapi: Any, record: ConnectionPoolEntry) -> None:
        self._held.discard(record)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        """Create a database from an async URL (``sqlite+aiosqlite``, ``postgresql+asyncpg``)."""
        return cls(make_engine(url, echo=echo))

    @property
    def engine(self) -> AsyncEngine:
        """The underlying async engine."""
        return self._engine

    @property
    def dialect(self) -> str:
        """The backend name: ``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def use(self, tx: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """Yield ``tx`` unchanged if given (the caller owns it), else a new transaction."""
        if tx is not None:
            yield tx
            return
        async with self.transaction() as session:
            yield session

    @asynccontextmanager
    async def read(self, tx: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """Like :meth:`use`, for ONE read statement: on PostgreSQL it runs on its own, as a
        transaction of its own would (a hot path's lookup costs one round trip, not three)."""
        if tx is not None:
            yield tx
            return
        async with self._reads() as session:
            yield session

    async def ping(self) -> None:
        """One trivial query (``SELECT 1``); raises if the database cannot answer it."""
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Dispose of the engine and its pooled connections; a SQLite connection still held
        by a task that outlived the stop is closed too (its transaction rolled back), so that
        the file is not left locked."""
        await self._engine.dispose()
        for record in list(self._held):
            self._held.discard(record)
            driver = record.driver_connection
            if driver is None:
                continue
            try:
                await asyncio.wait_for(driver.close(), ABANDONED_CLOSE_WAIT_S)
            except Exception as e:  # already closed, or stuck: nothing more to do at stop
                log.warning("A database connection left open by a stopped task: %s", e)
            else:
                log.warning("Closed a database connection a stopped task had left open")
        log.debug("database engine disposed")
