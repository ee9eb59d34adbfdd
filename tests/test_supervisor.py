"""Supervision of long-running loops: a crashed loop is logged with its traceback and started
again after a growing backoff; it counts as down until it has run a while again; a loop that
returns is over; stopping never raises (docs/architecture.md §4.7)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.backoff import Backoff
from bridge.supervisor import Supervisor


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_a_crashed_loop_is_restarted_and_counts_as_down_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes: list[bool] = []
    supervisor = Supervisor(
        backoff=Backoff(0.05),
        stable_after=0.1,
        on_change=lambda: changes.append(supervisor.healthy),
    )
    runs = {"n": 0}
    keep_running = asyncio.Event()

    async def loop() -> None:
        runs["n"] += 1
        if runs["n"] <= 2:
            raise RuntimeError(f"crash {runs['n']}")
        await keep_running.wait()

    with caplog.at_level(logging.ERROR, logger="bridge.supervisor"):
        handle = supervisor.spawn("the loop", loop)
        await wait_until(lambda: not supervisor.healthy)
        assert supervisor.down() == ["the loop"]
        await wait_until(lambda: runs["n"] == 3)
        assert not supervisor.healthy  # running again, but not for long enough yet
        await wait_until(lambda: supervisor.healthy)
    assert handle.restarts == 2 and handle.last_error == "RuntimeError: crash 2"
    assert changes == [False, True]
    crashes = [r for r in caplog.records if "the loop crashed" in r.getMessage()]
    assert len(crashes) == 2 and all(r.exc_info for r in crashes)
    assert "(2 in a row)" in crashes[1].getMessage()
    await supervisor.stop()


async def test_restarts_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("bridge.supervisor.asyncio.sleep", fake_sleep)
    supervisor = Supervisor(backoff=Backoff(1.0, 8.0), stable_after=60)
    crashes = {"n": 0}

    async def loop() -> None:
        crashes["n"] += 1
        if crashes["n"] <= 5:
            raise RuntimeError("again")

    supervisor.spawn("crashy", loop)
    await wait_until(lambda: crashes["n"] == 6)
    assert [s for s in slept if s >= 1] == [1.0, 2.0, 4.0, 8.0, 8.0]  # not the test's own waits
    await supervisor.stop()


async def test_a_loop_that_returns_is_over_and_stop_never_raises() -> None:
    supervisor = Supervisor()
    done = asyncio.Event()

    async def finite() -> None:
        done.set()

    supervisor.spawn("finite", finite)
    await done.wait()
    await wait_until(lambda: supervisor.loops == [])
    assert supervisor.healthy

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor.spawn("forever", forever)
    await asyncio.sleep(0)
    await supervisor.stop()
    assert supervisor.loops == []


async def test_cancelling_one_loop_leaves_the_others() -> None:
    supervisor = Supervisor()

    async def forever() -> None:
        await asyncio.Event().wait()

    one = supervisor.spawn("one", forever)
    two = supervisor.spawn("two", forever)
    await supervisor.cancel(one)
    assert [loop.name for loop in supervisor.loops] == ["two"]
    assert two.task is not None and not two.task.done()
    await supervisor.stop()
