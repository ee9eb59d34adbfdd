"""The durable Matrix inbox."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.db.engine import Database
from bridge.db.repos import Repositories
from tests.db.conftest import START_MS, FakeClock

DAY_MS = 86_400_000


def event(n: int, room: str = "!r:hs") -> dict[str, Any]:
    return {"type": "m.room.message", "room_id": room, "event_id": f"$e{n}", "content": {"n": n}}


async def test_accept_stores_events_in_order(repos: Repositories) -> None:
    assert await repos.inbox.is_empty()
    assert await repos.inbox.accept("t1", "h1", [event(1), event(2, "!other:hs")])
    assert await repos.inbox.accept("t2", "h2", [event(3)])
    items = await repos.inbox.pending(0, 10)
    assert [i.event for i in items] == [event(1), event(2, "!other:hs"), event(3)]
    assert [i.room_id for i in items] == ["!r:hs", "!other:hs", "!r:hs"]
    assert await repos.inbox.pending(items[0].id, 1) == [items[1]]
    assert await repos.inbox.count() == 3
    assert not await repos.inbox.is_empty()


async def test_replayed_transaction_stores_nothing(repos: Repositories) -> None:
    assert await repos.inbox.accept("t1", "h1", [event(1)])
    assert not await repos.inbox.accept("t1", "h1", [event(1)])
    assert len(await repos.inbox.pending(0, 10)) == 1
    # Same id, different body: Synapse on SQLite reused the id after a restart.
    assert await repos.inbox.accept("t1", "h2", [event(2)])
    assert len(await repos.inbox.pending(0, 10)) == 2


async def test_concurrent_replays_store_once(repos: Repositories) -> None:
    results = await asyncio.gather(*(repos.inbox.accept("t", "h", [event(1)]) for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    assert len(await repos.inbox.pending(0, 10)) == 1


async def test_done_and_unicode(repos: Repositories) -> None:
    weird = {"room_id": "!r:hs", "content": {"body": "héllo 👋 \u0000"}}
    no_room = {"type": "m.presence"}
    assert await repos.inbox.accept("t1", "h1", [weird, no_room])
    first, second = await repos.inbox.pending(0, 10)
    assert first.event == weird
    assert second.room_id == ""
    await repos.inbox.done(first.id)
    await repos.inbox.done(second.id)
    assert await repos.inbox.is_empty()


async def test_prune_keeps_recent_transactions_and_all_events(
    repos: Repositories, clock: FakeClock
) -> None:
    assert await repos.inbox.accept("old", "h", [event(1)])
    clock.now = START_MS + 6 * DAY_MS
    assert await repos.inbox.accept("new", "h", [event(2)])
    clock.now = START_MS + 8 * DAY_MS
    assert await repos.inbox.prune(7) == 1
    assert not await repos.inbox.accept("new", "h", [event(2)])
    assert len(await repos.inbox.pending(0, 10)) == 2


async def test_ids_are_never_reused_after_the_newest_row_is_deleted(repos: Repositories) -> None:
    # The pump queues rows with an id above the highest it has seen; a reused id would be
    # skipped forever (SQLite reuses max(id)+1 without AUTOINCREMENT).
    assert await repos.inbox.accept("t1", "h1", [event(1)])
    (first,) = await repos.inbox.pending(0, 10)
    await repos.inbox.done(first.id)
    assert await repos.inbox.accept("t2", "h2", [event(2)])
    (second,) = await repos.inbox.pending(first.id, 10)
    assert second.id > first.id
    assert second.event == event(2)


async def test_a_row_committed_late_is_not_skipped(db: Database, repos: Repositories) -> None:
    # The pump reads rows with an id above the highest it has seen. On PostgreSQL ids are drawn
    # when a row is inserted, not when it is committed: a transaction that took id 1 and commits
    # after another one's id 2 was read would be skipped for good (the fuzz run through the
    # PostgreSQL inbox then never settled). Stores are taken one after another, so a row that
    # becomes visible always has an id above every row visible before it.
    async with db.transaction() as slow:
        assert await repos.inbox.accept("slow", "h", [event(1)], tx=slow)
        fast = asyncio.create_task(repos.inbox.accept("fast", "h", [event(2)]))
        # The fast one either waits for the slow one (and nothing is visible yet) or, where
        # ids are drawn out of order, has committed by now.
        await asyncio.wait([fast], timeout=2)
        read = asyncio.create_task(repos.inbox.pending(0, 10))  # SQLite: waits for the commit
        await asyncio.wait([read], timeout=2)
    seen = await read
    assert await fast
    after = max((item.id for item in seen), default=0)
    later = await repos.inbox.pending(after, 10)
    assert sorted(item.event["event_id"] for item in [*seen, *later]) == ["$e1", "$e2"]
