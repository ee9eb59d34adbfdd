"""Database: transactions, composition with ``use``, and per-backend connection settings."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bridge.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from bridge.db.records import PortalKind
from bridge.db.repos import Repositories


class Boom(Exception):
    pass


async def test_transaction_commits(repos: Repositories) -> None:
    async with repos.db.transaction() as tx:
        await repos.kv.set("a", "1", tx=tx)
    assert await repos.kv.get("a") == "1"


async def test_transaction_rolls_back_on_error(repos: Repositories) -> None:
    with pytest.raises(Boom):
        async with repos.db.transaction() as tx:
            await repos.kv.set("a", "1", tx=tx)
            assert await repos.kv.get("a", tx=tx) == "1"
            raise Boom
    assert await repos.kv.get("a") is None


async def test_writes_compose_in_one_transaction(repos: Repositories) -> None:
    with pytest.raises(Boom):
        async with repos.db.transaction() as tx:
            assert await repos.cursors.claim_inbound("swarm:abc", tx=tx)
            await repos.cursors.set_cursor("snode:me", "n1", "0", last_hash="abc", tx=tx)
            raise Boom
    # Both the claim and the cursor were rolled back together: re-delivery is processed.
    assert await repos.cursors.get_cursor("snode:me", "n1", "0") is None
    assert await repos.cursors.claim_inbound("swarm:abc")


async def test_reads_in_a_transaction_see_its_own_core_writes(repos: Repositories) -> None:
    async with repos.db.transaction() as tx:
        portal = await repos.portals.get_or_create(PortalKind.GROUP, "03aa", tx=tx)
        await repos.portals.set_mxid(portal.id, "!room:hs", tx=tx)
        again = await repos.portals.get_by_id(portal.id, tx=tx)
        assert again is not None
        assert again.mxid == "!room:hs"


async def test_sqlite_pragmas(db: Database) -> None:
    async with db.transaction() as tx:
        if db.dialect == "sqlite":
            assert (await tx.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await tx.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (
                await tx.execute(text("PRAGMA busy_timeout"))
            ).scalar_one() == SQLITE_BUSY_TIMEOUT_MS
        else:
            assert db.dialect == "postgresql"
            assert (await tx.execute(text("SELECT 1"))).scalar_one() == 1


async def test_foreign_keys_are_enforced(repos: Repositories) -> None:
    with pytest.raises(IntegrityError):
        await repos.outbox.enqueue(12345, "text", "{}")


async def test_sqlite_transactions_queue_for_one_connection(db: Database) -> None:
    """While one transaction is held open, twenty more wait their turn and then all commit, in
    the order they asked (with a pool of connections they raced for SQLite's file lock and
    the losers failed with "database is locked", docs/architecture.md §3.5)."""
    if db.dialect != "sqlite":
        assert db.dialect == "postgresql"  # a pool of connections, row locks: not this case
        return
    held_open, release = asyncio.Event(), asyncio.Event()
    committed: list[int] = []

    async def first() -> None:
        async with db.transaction() as tx:
            await tx.execute(text("CREATE TABLE queue_probe (n INTEGER)"))
            held_open.set()
            await release.wait()

    async def write(n: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(text("INSERT INTO queue_probe VALUES (:n)"), {"n": n})
        committed.append(n)

    holder = asyncio.create_task(first())
    await asyncio.wait_for(held_open.wait(), 10)
    writers = []
    for n in range(20):
        writers.append(asyncio.create_task(write(n)))
        await asyncio.sleep(0)  # let it ask for the connection before the next one does
    assert committed == []  # all of them wait behind the open transaction
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, *writers), 30)
    assert committed == list(range(20))
    async with db.transaction() as tx:
        rows = (await tx.execute(text("SELECT n FROM queue_probe ORDER BY rowid"))).scalars()
        assert list(rows) == list(range(20))


async def test_closing_releases_a_sqlite_lock_a_stopped_task_left_behind(db_url: str) -> None:
    """A task that outlives the bridge's stop while inside a transaction (a stop step past its
    time limit is left behind) no longer keeps the file locked: the next start can write."""
    if not db_url.startswith("sqlite"):
        return  # PostgreSQL drops a closed client's locks by itself
    first = Database.from_url(db_url)
    held_open = asyncio.Event()

    async def left_behind() -> None:
        async with first.transaction() as tx:
            await tx.execute(text("CREATE TABLE lock_probe (n INTEGER)"))
            held_open.set()
            await asyncio.Event().wait()  # never finishes: the stop does not wait for it

    task = asyncio.create_task(left_behind())
    await asyncio.wait_for(held_open.wait(), 10)
    await first.close()
    second = Database.from_url(db_url)
    try:
        # Without the close, BEGIN IMMEDIATE waits the whole busy timeout (30 s) and fails.
        async with asyncio.timeout(10):
            async with second.transaction() as tx:
                await tx.execute(text("SELECT 1"))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await second.close()
