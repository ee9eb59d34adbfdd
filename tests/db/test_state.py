"""Poll cursors, inbound dedup, appservice transactions and key/value state."""

from __future__ import annotations

import asyncio

from bridge.db.records import PortalKind
from bridge.db.repos import Repositories
from tests.db.conftest import START_MS, FakeClock


async def test_cursor_get_set(repos: Repositories, clock: FakeClock) -> None:
    assert await repos.cursors.get_cursor("snode:me", "1.2.3.4:22021", "0") is None
    first = await repos.cursors.set_cursor("snode:me", "1.2.3.4:22021", "0", last_hash="h1")
    assert await repos.cursors.get_cursor("snode:me", "1.2.3.4:22021", "0") == first
    clock.now += 10
    second = await repos.cursors.set_cursor("snode:me", "1.2.3.4:22021", "0", last_hash="h2")
    assert second.updated_at == START_MS + 10
    assert await repos.cursors.get_cursor("snode:me", "1.2.3.4:22021", "0") == second
    room = await repos.cursors.set_cursor("sogs:https://open.example", "", "lokinet", seqno=2**40)
    assert room.seqno == 2**40 and room.last_hash is None
    assert await repos.cursors.get_cursor("sogs:https://open.example", "", "lokinet") == room


async def test_cursor_list_and_delete(repos: Repositories) -> None:
    b = await repos.cursors.set_cursor("snode:me", "n2", "0", last_hash="x")
    a = await repos.cursors.set_cursor("snode:me", "n1", "0", last_hash="y")
    other = await repos.cursors.set_cursor("snode:you", "n1", "0", last_hash="z")
    assert await repos.cursors.list_cursors("snode:me") == [a, b]
    assert await repos.cursors.delete_cursors("snode:me") == 2
    assert await repos.cursors.list_cursors("snode:me") == []
    assert await repos.cursors.list_cursors("snode:you") == [other]


async def test_claim_inbound(repos: Repositories, clock: FakeClock) -> None:
    portal = await repos.portals.get_or_create(PortalKind.GROUP, "03" + "cc" * 32)
    assert not await repos.cursors.is_processed("swarm:h1")
    assert await repos.cursors.claim_inbound("swarm:h1", portal_id=portal.id)
    assert not await repos.cursors.claim_inbound("swarm:h1", portal_id=portal.id)
    assert await repos.cursors.is_processed("swarm:h1")
    clock.now += 100
    assert await repos.cursors.claim_inbound("swarm:h2")
    assert await repos.cursors.prune_inbound(older_than=START_MS + 50) == 1
    assert not await repos.cursors.is_processed("swarm:h1")
    assert await repos.cursors.is_processed("swarm:h2")


async def test_concurrent_claim_inbound(repos: Repositories) -> None:
    results = await asyncio.gather(*(repos.cursors.claim_inbound("sogs:x|1") for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


async def test_claim_transaction(repos: Repositories) -> None:
    assert await repos.transactions.claim_transaction("42", "hash-a")
    assert not await repos.transactions.claim_transaction("42", "hash-a")
    # Synapse on SQLite reuses ids after a restart: same id, new body = new transaction.
    assert await repos.transactions.claim_transaction("42", "hash-b")


async def test_concurrent_claim_transaction(repos: Repositories) -> None:
    results = await asyncio.gather(
        *(repos.transactions.claim_transaction("7", "same-body") for _ in range(10))
    )
    assert sorted(results) == [False] * 9 + [True]


async def test_prune_transactions(repos: Repositories, clock: FakeClock) -> None:
    assert await repos.transactions.claim_transaction("1", "h")
    clock.now += 1000
    assert await repos.transactions.claim_transaction("2", "h")
    assert await repos.transactions.prune_transactions(older_than=START_MS + 500) == 1
    assert await repos.transactions.claim_transaction("1", "h")
    assert not await repos.transactions.claim_transaction("2", "h")


async def test_latest_transaction_ids_oldest_first(repos: Repositories, clock: FakeClock) -> None:
    for txn_id in ("8", "9"):
        assert await repos.transactions.claim_transaction(txn_id, "h")
        clock.now += 10
    # Three in the same millisecond, stored out of order, and the ephemeral part of a refused
    # one (bridge/matrix/txn_gaps.py), which is no stored transaction.
    for txn_id in ("11", "10", "12"):
        assert await repos.transactions.claim_transaction(txn_id, "h")
    assert await repos.transactions.claim_transaction("14", "h:ephemeral")
    assert await repos.transactions.latest_ids(4) == ["9", "10", "11", "12"]
    assert await repos.transactions.latest_ids(10) == ["8", "9", "10", "11", "12"]


async def test_kv(repos: Repositories) -> None:
    assert await repos.kv.get("bot.setup") is None
    await repos.kv.set("bot.setup", '{"avatar": true}')
    assert await repos.kv.get("bot.setup") == '{"avatar": true}'
    await repos.kv.set("bot.setup", "done")
    assert await repos.kv.get("bot.setup") == "done"
    assert await repos.kv.delete("bot.setup")
    assert not await repos.kv.delete("bot.setup")
    assert await repos.kv.get("bot.setup") is None
