"""Direct conversations' disappearing settings kept in the kv table."""

from __future__ import annotations

from bridge.db.repos import Repositories
from bridge.db.repos.dm_timers import DirectTimerRepo, TimerRecord


async def test_settings_are_stored_replaced_and_listed(repos: Repositories) -> None:
    store = DirectTimerRepo(repos.kv)
    first = TimerRecord("05aa", "05bb", 2, 3600, 10)
    await store.put(first)
    await store.put(TimerRecord("05aa", "05cc", 1, 60, 11))
    await store.put(TimerRecord("05aa", "05bb", 0, 0, 12))
    await repos.kv.set("dm-timer:05aa:05dd", "not json")  # skipped, not fatal
    assert await store.all() == [
        TimerRecord("05aa", "05bb", 0, 0, 12),
        TimerRecord("05aa", "05cc", 1, 60, 11),
    ]
