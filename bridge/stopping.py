"""Stopping in bounded steps (docs/architecture.md §4.7, supervision).

Each step of a shutdown runs in its own task with a time limit. A step that fails is logged
and a step that does not finish in time is cancelled, logged by name and left behind: the
steps after it still run, so the listener, the HTTP clients and the database are always
released and the process exits. The whole shutdown has a budget too; once it is spent, each
remaining step still gets a short grace period.

Pure but for asyncio, like :mod:`bridge.supervisor`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("bridge.app")

__all__ = ["StopSteps", "cancel_and_wait"]


class StopSteps:
    """Runs the steps of one shutdown, each within ``step_limit`` seconds and all of them
    within about ``budget`` seconds (at least ``grace`` seconds for each step)."""

    def __init__(
        self, *, step_limit: float = 10.0, budget: float = 15.0, grace: float = 0.5
    ) -> None:
        self._step_limit = step_limit
        self._grace = grace
        self._deadline = time.monotonic() + budget
        self.overdue: list[str] = []  # the steps that did not finish in time

    def _limit(self) -> float:
        left = self._deadline - time.monotonic()
        return min(self._step_limit, max(self._grace, left))

    async def step(self, what: str, work: Awaitable[object]) -> None:
        """Run one step: its error is logged; if it runs past its limit it is cancelled,
        logged, and stopping goes on without waiting for it any longer."""
        task = asyncio.ensure_future(work)
        limit = self._limit()
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            self.overdue.append(what)
            log.error("stop: %s did not finish in %g s; going on", what, limit)
            task.cancel()
            # A step that swallows its cancellation is not waited for: only a moment for
            # it to unwind, then it is left behind (its error, if any, is not lost).
            await asyncio.wait({task}, timeout=min(self._grace, limit))
            task.add_done_callback(_log_late)
            return
        if not task.cancelled() and (error := task.exception()) is not None:
            if not isinstance(error, Exception):
                raise error
            log.error("Stopping %s failed", what, exc_info=error)


def _log_late(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("A stop step that overran failed later", exc_info=error)


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended. Its own error or cancellation is not
    raised here; the caller being cancelled while it waits is (never swallowed)."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: it was logged where it happened, or is of no interest
