"""Delivers outbox rows (Matrix → Session) with bounded retries and backoff.

A row is written in the same transaction as the Matrix event's handling; this task sends it.
Delivery functions are registered per row ``kind``. They raise :class:`TemporaryFailure` for
what may work later (network down, server busy) and :class:`PermanentFailure` for what never
will (message refused); after ``max_attempts`` a temporary failure becomes permanent. The
sender of a failed message is told through ``on_failed`` (a notice and a send-status event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from bridge.backoff import Backoff
from bridge.db.records import OutboxRecord
from bridge.db.repos.outbox import OutboxRepo

log = logging.getLogger("bridge.core.portal.outbox")

Deliver = Callable[[OutboxRecord], Awaitable[None]]
FailureHook = Callable[[OutboxRecord, str], Awaitable[None]]
SuccessHook = Callable[[OutboxRecord], Awaitable[None]]

BATCH = 20


class TemporaryFailure(Exception):
    """Delivery failed but may work on a later attempt."""


class PermanentFailure(Exception):
    """Delivery can never work; the message says why, for the user."""


def now_ms() -> int:
    return int(time.time() * 1000)


async def _nothing(record: OutboxRecord) -> None:
    return None


class OutboxSender:
    """The task that drains the outbox."""

    def __init__(
        self,
        repo: OutboxRepo,
        deliverers: Mapping[str, Deliver],
        on_failed: FailureHook,
        *,
        on_delivered: SuccessHook = _nothing,
        max_attempts: int = 5,
        base_delay_ms: int = 2_000,
        max_delay_ms: int = 120_000,
        idle_poll_s: float = 5.0,
    ) -> None:
        self._repo = repo
        self._deliverers = dict(deliverers)
        self._on_failed = on_failed
        self._on_delivered = on_delivered
        self._max_attempts = max_attempts
        self._backoff = Backoff(base_delay_ms, max_delay_ms, jitter=(0.8, 1.2))
        self._idle_poll_s = idle_poll_s
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next idle poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver due rows until cancelled; rows a crash left in ``sending`` go first."""
        requeued = await self._repo.requeue_stale()
        if requeued:
            log.info("Re-sending %d outbox rows interrupted by a restart", requeued)
        while True:
            self._wakeup.clear()
            rows = await self._repo.claim_due(now_ms(), BATCH)
            for row in rows:
                await self._deliver(row)
            # A portal's next row is due only once the one before it is done, so a backlog
            # comes one row per portal per claim: claim again at once while rows come back.
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._idle_poll_s)

    def backoff_ms(self, attempts: int) -> int:
        """Delay before attempt ``attempts + 1``: doubling, capped, with jitter."""
        return int(self._backoff.delay(attempts))

    async def _deliver(self, row: OutboxRecord) -> None:
        deliver = self._deliverers.get(row.kind)
        try:
            if deliver is None:
                raise PermanentFailure(f"the bridge cannot send {row.kind!r} messages")
            await deliver(row)
        except PermanentFailure as e:
            await self._fail(row, str(e))
        except TemporaryFailure as e:
            if row.attempts >= self._max_attempts:
                await self._fail(row, f"{e} (gave up after {row.attempts} attempts)")
                return
            log.info("Outbox %d (%s) failed, retrying: %s", row.id, row.kind, e)
            await self._repo.reschedule(row.id, now_ms() + self.backoff_ms(row.attempts), str(e))
        except Exception as e:
            log.exception("Outbox %d (%s) failed unexpectedly", row.id, row.kind)
            await self._fail(row, f"internal error ({type(e).__name__})")
        else:
            await self._repo.mark_done(row.id)
            await self._on_delivered(row)

    async def _fail(self, row: OutboxRecord, reason: str) -> None:
        log.warning("Outbox %d (%s) failed for good: %s", row.id, row.kind, reason)
        await self._repo.mark_failed(row.id, reason)
        try:
            await self._on_failed(row, reason)
        except Exception:
            log.exception("Could not tell the sender that outbox %d failed", row.id)
