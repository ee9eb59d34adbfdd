"""Supervision of the bridge's long-running loops (docs/architecture.md §4.7).

A loop is an ``async`` function that runs until it is cancelled (or returns when its work is
over). :meth:`Supervisor.spawn` runs it in a task; when it raises, the error is logged with its
traceback and the loop is started again after a backoff that grows with each crash in a row.
A loop counts as **down** from its crash until it has run ``stable_after`` seconds again; the
owner reads :attr:`Supervisor.healthy` (readiness) and is told of every change through
``on_change``. A loop that returns normally is finished and is not restarted.

Pure but for asyncio (and the count of restarts in :mod:`bridge.metrics`), like
:mod:`bridge.backoff`, so every layer may use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge import metrics
from bridge.backoff import Backoff
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.supervisor")

__all__ = ["DEFAULT_BACKOFF", "Loop", "Supervisor"]

#: 1 s after the first crash, doubling, at most a minute, ±20 %.
DEFAULT_BACKOFF = Backoff(1.0, 60.0, jitter=(0.8, 1.2))

LoopFactory = Callable[[], Awaitable[None]]


def _nothing() -> None:
    return None


@dataclass(eq=False)
class Loop:
    """One supervised loop: its name, whether it is up, and how often it was restarted."""

    name: str
    factory: LoopFactory
    up: bool = True
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs loops, restarts them after a crash, and knows whether all of them are up."""

    def __init__(
        self,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        stable_after: float = 5.0,
        on_change: Callable[[], None] = _nothing,
    ) -> None:
        self._backoff = backoff
        self._stable_after = stable_after
        self._on_change = on_change
        self._loops: list[Loop] = []

    @property
    def healthy(self) -> bool:
        """True while every running loop is up (none is waiting to be restarted)."""
        return all(loop.up for loop in self._loops)

    def down(self) -> list[str]:
        """The names of the loops that are down."""
        return [loop.name for loop in self._loops if not loop.up]

    @property
    def loops(self) -> list[Loop]:
        return list(self._loops)

    def spawn(self, name: str, factory: LoopFactory) -> Loop:
        """Run ``factory()`` in a task, restarting it after each crash until cancelled."""
        loop = Loop(name, factory)
        loop.task = asyncio.create_task(self._supervise(loop), name=name)
        self._loops.append(loop)
        return loop

    async def cancel(self, loop: Loop) -> None:
        """Stop one loop (never raises; the loop's own errors were logged already)."""
        if loop.task is not None:
            await cancel_and_wait(loop.task)
        self._forget(loop)

    async def stop(self) -> None:
        """Cancel every loop and wait for them (never raises)."""
        loops, self._loops = list(self._loops), []
        for loop in loops:
            if loop.task is not None:
                loop.task.cancel()
        for loop in loops:
            if loop.task is not None:
                await cancel_and_wait(loop.task)  # the caller's cancellation goes up

    def _forget(self, loop: Loop) -> None:
        if loop in self._loops:
            self._loops.remove(loop)
            self._changed()

    def _set_up(self, loop: Loop, up: bool) -> None:
        if loop.up != up:
            loop.up = up
            if up:
                log.info("%s is running again (restart %d)", loop.name, loop.restarts)
            self._changed()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("The supervisor's change hook failed")

    async def _supervise(self, loop: Loop) -> None:
        crashes = 0  # in a row: reset once the loop ran stable_after seconds
        event_loop = asyncio.get_running_loop()
        stable: asyncio.TimerHandle | None = None
        try:
            while True:
                started = time.monotonic()
                try:
                    await loop.factory()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if stable is not None:
                        stable.cancel()
                    crashes = (
                        1 if time.monotonic() - started >= self._stable_after else crashes + 1
                    )
                    loop.last_error = f"{type(e).__name__}: {e}"
                    self._set_up(loop, False)
                    delay = self._backoff.delay(crashes)
                    log.exception(
                        "%s crashed (%d in a row); restarting it in %.1f s",
                        loop.name,
                        crashes,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    loop.restarts += 1
                    metrics.loop_restarted(loop.name)
                    stable = event_loop.call_later(self._stable_after, self._set_up, loop, True)
                    continue
                break  # the loop's work is over
        finally:
            if stable is not None:
                stable.cancel()
            self._forget(loop)
