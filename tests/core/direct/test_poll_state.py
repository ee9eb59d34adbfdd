"""The bridge's poll state caches cursors write-through (bridge/core/direct/poll_state.py):
one bulk read per account, later cycles from memory, and the database stays the truth."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.core.direct.poll_state import DbPollState
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import CursorRecord
from bridge.db.repos.cursors import CursorRepo

ALICE = "05" + "a1" * 32
BOB = "05" + "b2" * 32
NODES = ("n1", "n2", "n3")
NAMESPACES = (0, -10)


class CountingCursors(CursorRepo):
    """The real repository, counting reads and failing the next ``fail_writes`` writes."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.calls: Counter[str] = Counter()
        self.fail_writes = 0

    async def list_cursors(self, poller: str, **kw: Any) -> list[CursorRecord]:
        self.calls["list_cursors"] += 1
        return await super().list_cursors(poller, **kw)

    async def get_cursor(self, *args: Any, **kw: Any) -> CursorRecord | None:
        self.calls["get_cursor"] += 1
        return await super().get_cursor(*args, **kw)

    async def set_cursor(self, *args: Any, **kw: Any) -> CursorRecord:
        self.calls["set_cursor"] += 1
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("database went away")
        return await super().set_cursor(*args, **kw)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[CountingCursors]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    try:
        yield CountingCursors(db)
    finally:
        await db.close()


async def cycle(state: DbPollState, account: str) -> dict[tuple[str, int], str | None]:
    """What one poll cycle reads: every (node, namespace) cursor of the account."""
    return {(n, ns): await state.get_last_hash(n, account, ns) for n in NODES for ns in NAMESPACES}


async def test_n_cycles_cost_one_bulk_read_per_account(repo: CountingCursors) -> None:
    await repo.set_cursor(f"snode:{ALICE}", "n1", "0", last_hash="h0")
    await repo.set_cursor(f"snode:{ALICE}", "n2", "-10", last_hash="g0")
    repo.calls.clear()
    state = DbPollState(repo)
    for i in range(20):
        seen = await cycle(state, ALICE)
        assert seen[("n1", 0)] == (f"h{i}" if i else "h0")
        assert seen[("n2", -10)] == "g0"
        assert seen[("n3", 0)] is None
        await state.set_last_hash("n1", ALICE, 0, f"h{i + 1}")
        await cycle(state, BOB)
    assert repo.calls == Counter(list_cursors=2, set_cursor=20)
    # Every write reached the database: a restarted bridge reads the latest cursor.
    record = await repo.get_cursor(f"snode:{ALICE}", "n1", "0")
    assert record is not None and record.last_hash == "h20"


async def test_a_failed_write_drops_the_cache_and_the_next_read_rereads(
    repo: CountingCursors,
) -> None:
    state = DbPollState(repo)
    await state.set_last_hash("n1", ALICE, 0, "h1")
    assert await state.get_last_hash("n1", ALICE, 0) == "h1"
    assert repo.calls["list_cursors"] == 1
    repo.fail_writes = 1
    with pytest.raises(ConnectionError):
        await state.set_last_hash("n1", ALICE, 0, "h2")
    # The write failed: memory is not ahead of the database, which is read again.
    assert await state.get_last_hash("n1", ALICE, 0) == "h1"
    assert repo.calls["list_cursors"] == 2
    # Another process moved the cursor meanwhile: the re-read sees what the database holds.
    await repo.set_cursor(f"snode:{ALICE}", "n1", "0", last_hash="h3")
    repo.fail_writes = 1
    with pytest.raises(ConnectionError):
        await state.set_last_hash("n2", ALICE, 0, "x")
    assert await state.get_last_hash("n1", ALICE, 0) == "h3"
    assert await state.get_last_hash("n2", ALICE, 0) is None
    assert repo.calls["list_cursors"] == 3


async def test_a_write_before_the_first_read_is_not_lost(repo: CountingCursors) -> None:
    state = DbPollState(repo)
    await state.set_last_hash("n1", ALICE, 0, "h1")
    assert await state.get_last_hash("n1", ALICE, 0) == "h1"
    await state.set_last_hash("n1", ALICE, 0, "h2")
    assert await state.get_last_hash("n1", ALICE, 0) == "h2"
    assert repo.calls["list_cursors"] == 1


async def test_forget_drops_memory_but_not_the_database(repo: CountingCursors) -> None:
    state = DbPollState(repo)
    await state.set_last_hash("n1", ALICE, 0, "h1")
    assert await state.get_last_hash("n1", ALICE, 0) == "h1"
    state.forget(ALICE)
    assert await state.get_last_hash("n1", ALICE, 0) == "h1"
    assert repo.calls["list_cursors"] == 2


async def test_concurrent_first_reads_share_one_load(repo: CountingCursors) -> None:
    await repo.set_cursor(f"snode:{ALICE}", "n1", "0", last_hash="h1")
    state = DbPollState(repo)
    found = await asyncio.gather(*(state.get_last_hash("n1", ALICE, 0) for _ in range(10)))
    assert found == ["h1"] * 10
    assert repo.calls["list_cursors"] == 1


async def test_cursor_nodes_say_where_the_cursors_moved_last_across_a_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    ticks = iter(range(1000, 2000))
    try:
        repo = CursorRepo(db, clock=lambda: next(ticks))
        state = DbPollState(repo)
        assert await state.cursor_nodes(ALICE) == {}
        await state.set_last_hash("n1", ALICE, 0, "h1")  # 1000
        await state.set_last_hash("n2", ALICE, 0, "g1")  # 1001
        await state.set_last_hash("n1", ALICE, -10, "h2")  # 1002: n1 moved last
        assert await state.cursor_nodes(ALICE) == {"n1": 1002, "n2": 1001}
        await state.set_last_hash("n2", ALICE, 0, "g2")  # 1003
        assert await state.cursor_nodes(ALICE) == {"n1": 1002, "n2": 1003}
        assert await state.cursor_nodes(BOB) == {}
        # A restarted bridge reads the same from the database (updated_at).
        again = DbPollState(repo)
        assert await again.cursor_nodes(ALICE) == {"n1": 1002, "n2": 1003}
        assert await again.get_last_hash("n2", ALICE, 0) == "g2"
    finally:
        await db.close()
