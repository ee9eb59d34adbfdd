"""Bounded shutdown steps (bridge/stopping.py, docs/architecture.md §4.7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bridge.stopping import StopSteps, cancel_and_wait


async def test_a_hanging_step_is_cancelled_logged_and_the_next_steps_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def release(what: str) -> None:
        ran.append(what)

    steps = StopSteps(step_limit=0.2, budget=5.0)
    with caplog.at_level(logging.ERROR, "bridge.app"):
        # "done when": bounded by the step limit, not by the hanging step
        await asyncio.wait_for(steps.step("the community portals", hang()), 5)
        await steps.step("the listener", release("listener"))
        await steps.step("the database", release("database"))
    assert cancelled.is_set()
    assert ran == ["listener", "database"]
    assert steps.overdue == ["the community portals"]
    assert "stop: the community portals did not finish in 0.2 s; going on" in caplog.text


async def test_a_step_that_swallows_its_cancellation_is_left_behind() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            # the bug this guards against: cancellation swallowed
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    steps = StopSteps(step_limit=0.1, budget=5.0, grace=0.1)
    await asyncio.wait_for(steps.step("the stubborn part", stubborn()), 5)
    assert steps.overdue == ["the stubborn part"]
    release.set()  # let the stubborn task end, so the test leaves nothing running
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=5)


async def test_a_failing_step_is_logged_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("cannot stop")

    steps = StopSteps(step_limit=1.0)
    with caplog.at_level(logging.ERROR, "bridge.app"):
        await steps.step("the expiring messages", broken())
    assert steps.overdue == []
    assert "Stopping the expiring messages failed" in caplog.text
    assert "cannot stop" in caplog.text


async def test_the_budget_bounds_the_whole_shutdown_but_each_step_gets_its_grace() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    steps = StopSteps(step_limit=10.0, budget=0.2, grace=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for name in ("a", "b", "c"):
        await steps.step(name, hang())
    assert steps.overdue == ["a", "b", "c"]
    # "done when": the budget plus a grace per step, far below 3 times the step limit
    assert loop.time() - started < 5.0


async def test_cancel_and_wait_ends_the_task_and_never_swallows_the_callers_cancel() -> None:
    inner = asyncio.create_task(asyncio.sleep(3600))
    await cancel_and_wait(inner)
    assert inner.cancelled()

    stuck_started = asyncio.Event()

    async def stuck() -> None:  # ends only once cancelled twice
        stuck_started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)

    target = asyncio.create_task(stuck())
    await stuck_started.wait()
    waiter = asyncio.create_task(cancel_and_wait(target))
    await asyncio.sleep(0)  # let the waiter cancel the target and start waiting
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    target.cancel()
    await asyncio.wait({target}, timeout=5)
    assert target.done()
