"""Fixtures running every database test on SQLite and on PostgreSQL.

PostgreSQL: one fresh database per test module, created under ``$SMB_TEST_POSTGRES_URL``
and dropped afterwards; each test starts from an empty ``public`` schema. SQLite: a new
file per test. Without ``$SMB_TEST_POSTGRES_URL`` the PostgreSQL tests fail (never skip):
the test command always provides it. They are marked ``integration``, so
``pytest -m "not integration"`` leaves them out.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bridge.db.engine import Database
from bridge.db.migrate import upgrade_to_head
from bridge.db.repos import Repositories

PG_ENV = "SMB_TEST_POSTGRES_URL"
START_MS = 1_700_000_000_000


async def _pg_admin(server_url: str, *statements: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _run_in_own_loop(server_url: str, *statements: str) -> None:
    # Module fixtures must not touch the test's event loop: run in a thread with its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _pg_admin(server_url, *statements)).result()


@dataclass(frozen=True)
class Backend:
    """One database backend under test."""

    name: str
    pg_url: str | None = None

    async def fresh_url(self, tmp_path: Path) -> str:
        """The URL of an empty database for one test."""
        if self.pg_url is None:
            return f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
        await _pg_admin(
            self.pg_url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public"
        )
        return self.pg_url


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each database backend; PostgreSQL gets a database of its own for this module."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.fail(
            f"{PG_ENV} is not set: the database tests need a PostgreSQL server URL such as "
            "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres (the test command sets it)"
        )
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    _run_in_own_loop(server, f'CREATE DATABASE "{name}"')
    try:
        yield Backend("postgresql", make_url(server).set(database=name).render_as_string(False))
    finally:
        _run_in_own_loop(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_url(backend: Backend, tmp_path: Path) -> str:
    """An empty database (no tables, never migrated)."""
    return await backend.fresh_url(tmp_path)


@pytest.fixture
async def db_url(empty_url: str) -> str:
    """A database migrated to head."""
    await upgrade_to_head(empty_url)
    return empty_url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on a migrated database."""
    database = Database.from_url(db_url)
    try:
        yield database
    finally:
        await database.close()


class FakeClock:
    """A clock the test moves by hand (milliseconds)."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """The clock every repository of :func:`repos` uses."""
    return FakeClock()


@pytest.fixture
def repos(db: Database, clock: FakeClock) -> Repositories:
    """All repositories over the migrated test database."""
    return Repositories.create(db, clock)
