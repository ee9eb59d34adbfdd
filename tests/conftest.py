"""Settings for the whole test suite."""

from __future__ import annotations

import asyncio
import asyncio.runners
import sys

from hypothesis import HealthCheck, settings

# Property tests check behaviour, never speed: no per-example deadline and no "too slow"
# health check, which a loaded CI machine would trip at random (timings belong in bench/).
settings.register_profile("bridge", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bridge")


# --- a guard against a test's event loop never closing ------------------------------------
# When a test's loop closes, asyncio cancels the tasks still pending and waits for them with no
# limit. One kind of task can never finish there: SQLAlchemy's graceful close of an aiosqlite
# connection that was garbage-collected after its test ended (seen in CI: the whole suite hung
# in teardown). Such tasks are waited for at most STUCK_TASK_WAIT_S, then named on stderr and
# left behind, so one leaked connection cannot stall the run.
STUCK_TASK_WAIT_S = 30.0


def _cancel_all_tasks_bounded(loop: asyncio.AbstractEventLoop) -> None:
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    _, pending = loop.run_until_complete(asyncio.wait(to_cancel, timeout=STUCK_TASK_WAIT_S))
    for task in pending:
        print(f"\n[conftest] task left behind at loop close: {task!r}", file=sys.stderr)
    for task in to_cancel - pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during event loop shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


asyncio.runners._cancel_all_tasks = _cancel_all_tasks_bounded  # type: ignore[attr-defined]
