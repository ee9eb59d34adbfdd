"""Database: transactions, composition with ``use``, and per-backend connection settings."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bridge.db.engine import Database
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
            assert (await tx.execute(text("PRAGMA busy_timeout"))).scalar_one() == 10_000
        else:
            assert db.dialect == "postgresql"
            assert (await tx.execute(text("SELECT 1"))).scalar_one() == 1


async def test_foreign_keys_are_enforced(repos: Repositories) -> None:
    with pytest.raises(IntegrityError):
        await repos.outbox.enqueue(12345, "text", "{}")
