"""Delivers outbox rows (Matrix → Session) under the failure policy (docs/architecture.md §4.7).

A row is written in the same transaction as the Matrix event's handling; this task sends it.
Delivery functions are registered per row ``kind``. They raise :class:`TemporaryFailure` for
what may work later (network down, server busy) and :class:`PermanentFailure` for what never
will (message refused). Any other error is classified by
:func:`~bridge.core.portal.failures.is_transient` (a database error after the post, e.g., is
transient: the row is sent again, and the deliverers make that safe).

* Transient: the row is tried again with capped backoff, for as long as it takes. When the
  row has been failing for longer than ``delay_notice_after`` seconds (counted from its first
  transient failure, not from when it was queued: a row that waited behind a backlog and then
  met a short outage is no reason to speak), its sender is told once that it is queued
  (``on_delayed``), and told again when it goes through (``on_recovered``).
* Permanent: the row is marked failed, parked in the dead-letter table (``park``) and its
  sender is told (``on_failed``: a notice and a failed send-status). An unexpected error (a
  bug) is tried :data:`~bridge.core.portal.failures.PERMANENT_ATTEMPTS` times first.

Rows of different portals are delivered concurrently (at most :data:`MAX_IN_FLIGHT` at once);
a portal's rows one after another, in order (``claim_due`` gives a portal's next row only once
the one before it is done). A slow upload in one chat never holds up another. The task that
delivered a portal's row goes on with the rows after it (``claim_next``, :data:`RUN` at a
time) instead of waiting for the next claim round; rows it claimed but did not try (the one
before them must wait) go back to ``pending`` uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from bridge import metrics
from bridge.backoff import Backoff
from bridge.core.portal.failures import (
    PERMANENT_ATTEMPTS,
    PermanentFailure,
    TemporaryFailure,
    is_transient,
)
from bridge.db.records import OutboxRecord
from bridge.db.repos.outbox import OutboxRepo

log = logging.getLogger("bridge.core.portal.outbox")

__all__ = [
    "Deliver",
    "OutboxSender",
    "PermanentFailure",
    "TemporaryFailure",
]

Deliver = Callable[[OutboxRecord], Awaitable[None]]
FailureHook = Callable[[OutboxRecord, str], Awaitable[None]]
SuccessHook = Callable[[OutboxRecord], Awaitable[None]]
# (row, error text, tries): keep a row that failed for good (the dead-letter table)
ParkHook = Callable[[OutboxRecord, str, int], Awaitable[None]]

BATCH = 20
MAX_IN_FLIGHT = 20
RUN = 10  # a portal's next rows claimed at once by the task that delivered the one before


def now_ms() -> int:
    return int(time.time() * 1000)


async def _nothing(record: OutboxRecord) -> None:
    return None


async def _nothing_with(record: OutboxRecord, reason: str) -> None:
    return None


async def _no_park(record: OutboxRecord, reason: str, tries: int) -> None:
    return None


class OutboxSender:
    """The task that drains the outbox (see the module docstring)."""

    def __init__(
        self,
        repo: OutboxRepo,
        deliverers: Mapping[str, Deliver],
        on_failed: FailureHook,
        *,
        on_delivered: SuccessHook = _nothing,
        on_delayed: FailureHook = _nothing_with,
        on_recovered: SuccessHook = _nothing,
        park: ParkHook = _no_park,
        delay_notice_after: float = 60.0,
        base_delay_ms: int = 2_000,
        max_delay_ms: int = 60_000,
        idle_poll_s: float = 5.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._repo = repo
        self._deliverers = dict(deliverers)
        self._on_failed = on_failed
        self._on_delivered = on_delivered
        self._on_delayed = on_delayed
        self._on_recovered = on_recovered
        self._park = park
        self._delay_notice_ms = int(delay_notice_after * 1000)
        self._backoff = Backoff(base_delay_ms, max_delay_ms, jitter=(0.8, 1.2))
        self._idle_poll_s = idle_poll_s
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._crash: BaseException | None = None
        self._bugs: dict[int, int] = {}  # row id -> unexpected errors in a row
        self._delayed: set[int] = set()  # rows whose sender was told they are queued
        self._failing_since: dict[int, int] = {}  # row id -> its first transient failure (ms)

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next idle poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver due rows until cancelled; rows a crash left in ``sending`` go first.

        A database error outside a delivery (claiming, marking a row done) ends the run with
        that error, for the supervisor to start it again; the rows then in flight are sent
        again after ``requeue_stale``, which the deliverers make safe.
        """
        requeued = await self._repo.requeue_stale()
        if requeued:
            log.info("Re-sending %d outbox rows interrupted by a restart", requeued)
        self._crash = None
        try:
            while True:
                self._wakeup.clear()
                if self._crash is not None:
                    raise self._crash
                room = MAX_IN_FLIGHT - len(self._in_flight)
                rows = await self._repo.claim_due(self._clock(), min(BATCH, room)) if room else []
                for row in rows:
                    self._start(row)
                # A portal's next row is due only once the one before it is done, so claim
                # again whenever a delivery finishes (it sets the wakeup) or rows are added.
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._idle_poll_s)
        finally:
            in_flight, self._in_flight = list(self._in_flight), set()
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    def _start(self, row: OutboxRecord) -> None:
        task = asyncio.create_task(self._deliver(row), name=f"outbox-{row.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._crash = self._crash or error
        self._wakeup.set()

    def backoff_ms(self, attempts: int) -> int:
        """Delay before attempt ``attempts + 1``: doubling, capped, with jitter."""
        return int(self._backoff.delay(attempts))

    async def _deliver(self, row: OutboxRecord) -> None:
        """Deliver ``row``, then the portal's rows after it while they are due, in order."""
        run = [row]
        while run:
            current = run.pop(0)
            if not await self._deliver_one(current):
                await self._repo.release([r.id for r in run])
                return
            if not run:
                run = await self._repo.claim_next(current.portal_id, self._clock(), RUN)

    async def _deliver_one(self, row: OutboxRecord) -> bool:
        """Deliver one row; False if it must be tried again (the portal's next rows wait)."""
        deliver = self._deliverers.get(row.kind)
        try:
            if deliver is None:
                raise PermanentFailure(f"the bridge cannot send {row.kind!r} messages")
            await deliver(row)
        except PermanentFailure as e:
            await self._fail(row, str(e), row.attempts)
        except Exception as e:
            if is_transient(e):
                await self._wait(row, str(e) or type(e).__name__)
            else:
                return await self._bug(row, e)
            return False
        else:
            self._bugs.pop(row.id, None)
            self._failing_since.pop(row.id, None)
            await self._repo.mark_done(row.id)
            if row.id in self._delayed:
                self._delayed.discard(row.id)
                await self._tell(self._on_recovered(row), row)
            await self._on_delivered(row)
        return True

    async def _wait(self, row: OutboxRecord, reason: str) -> None:
        """A transient failure: try again later, however long it takes."""
        log.info("Outbox %d (%s) must wait (try %d): %s", row.id, row.kind, row.attempts, reason)
        metrics.failed(metrics.TRANSIENT, "outbox")
        now = self._clock()
        await self._repo.reschedule(row.id, now + self.backoff_ms(row.attempts), reason)
        since = self._failing_since.setdefault(row.id, now)
        if now - since >= self._delay_notice_ms and row.id not in self._delayed:
            self._delayed.add(row.id)
            await self._tell(self._on_delayed(row, reason), row)

    async def _bug(self, row: OutboxRecord, error: Exception) -> bool:
        """An unexpected error: try a few times, then treat it as permanent (True: the
        portal's next rows may go)."""
        bugs = self._bugs[row.id] = self._bugs.get(row.id, 0) + 1
        log.error(
            "Outbox %d (%s) failed unexpectedly (%d)", row.id, row.kind, bugs, exc_info=error
        )
        reason = f"internal error ({type(error).__name__})"
        if bugs < PERMANENT_ATTEMPTS:
            await self._repo.reschedule(row.id, self._clock() + self.backoff_ms(bugs), reason)
            return False
        del self._bugs[row.id]
        await self._fail(row, reason, bugs)
        return True

    async def _fail(self, row: OutboxRecord, reason: str, tries: int) -> None:
        log.warning("Outbox %d (%s) failed for good: %s", row.id, row.kind, reason)
        await self._repo.mark_failed(row.id, reason)
        await self._park(row, reason, tries)
        self._delayed.discard(row.id)
        self._failing_since.pop(row.id, None)
        await self._tell(self._on_failed(row, reason), row)

    async def _tell(self, notice: Awaitable[None], row: OutboxRecord) -> None:
        try:
            await notice
        except Exception:
            log.exception("Could not tell the sender of outbox %d how it went", row.id)
