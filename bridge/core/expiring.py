"""Bot messages that carry a secret (a new recovery phrase) and are removed again.

The bot sends the message, the user confirms they saved what it shows (``saved``), and the bot
redacts it; if no confirmation comes, the bot redacts it anyway after ``ttl`` seconds. The
deadline is stored in the database (:class:`~bridge.db.repos.expiring.ExpiringMessageRepo`),
so a restart in between does not leave the message behind: :meth:`ExpiringMessages.start`
schedules every stored one again (an overdue one at once).

A redaction removes the content from clients and from other servers, but the homeserver keeps
the original for its ``redaction_retention_period`` (Synapse: 7 days by default,
docs/matrix-side.md §2.8); the README says so to operators.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mautrix.appservice import IntentAPI

from bridge.db.records import ExpiringMessageRecord
from bridge.db.repos.expiring import ExpiringMessageRepo
from bridge.matrix.send import derived_txn_id, redact_once, send_notice
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.core.expiring")

RETRY_DELAY_S = 60.0  # after a failed redaction (homeserver unreachable)


class ExpiringMessages:
    """Sends, remembers and redacts the bot's expiring messages."""

    def __init__(
        self,
        *,
        repo: ExpiringMessageRepo,
        intent: Callable[[], IntentAPI],
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._intent = intent  # the bot's intent exists only once the appservice runs
        self.ttl = ttl
        self._clock = clock
        self._timers: dict[str, asyncio.Task[None]] = {}
        # One removal at a time: a confirmation and a deadline must not both redact.
        self._lock = asyncio.Lock()

    async def post(self, room_id: str, owner: str, markdown: str, *, cause: str) -> str:
        """Send ``markdown`` as the bot, to be removed by the deadline; ``cause`` (the event
        that asked for it) makes the send idempotent. Returns the message's event id."""
        event_id = str(
            await send_notice(
                self._intent(), room_id, markdown, txn_id=derived_txn_id("expiring", cause)
            )
        )
        deadline = int((self._clock() + self.ttl) * 1000)
        record = ExpiringMessageRecord(event_id, room_id, owner, deadline)
        await self._repo.add(record)
        self._schedule(record)
        return event_id

    async def confirm(self, owner: str) -> int:
        """The owner saved what their messages showed: remove them now; how many there were."""
        removed = 0
        for record in await self._repo.list_of(owner):
            timer = self._timers.pop(record.event_id, None)
            if timer is not None:
                timer.cancel()
            if await self._remove(record):
                removed += 1
        return removed

    async def start(self) -> None:
        """Schedule every stored message (after a restart)."""
        for record in await self._repo.list_all():
            self._schedule(record)

    async def stop(self) -> None:
        timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
        for timer in timers:
            await cancel_and_wait(timer)

    def _schedule(self, record: ExpiringMessageRecord) -> None:
        if record.event_id in self._timers:
            return
        task = asyncio.create_task(self._expire(record), name=f"expire-{record.event_id}")
        self._timers[record.event_id] = task

    async def _expire(self, record: ExpiringMessageRecord) -> None:
        await asyncio.sleep(max(0.0, record.deadline / 1000 - self._clock()))
        while True:
            try:
                if await self._remove(record):
                    await send_notice(
                        self._intent(),
                        record.room_id,
                        "I deleted the message with your recovery phrase: its time was up.",
                        txn_id=derived_txn_id("expired", record.event_id),
                    )
                break
            except Exception as e:  # the homeserver or the database is away: try again later
                log.warning("Could not remove expiring message %s: %s", record.event_id, e)
                await asyncio.sleep(RETRY_DELAY_S)
        self._timers.pop(record.event_id, None)

    async def _remove(self, record: ExpiringMessageRecord) -> bool:
        """Redact the message if it is still waiting, then forget it; False if it was not."""
        async with self._lock:
            if await self._repo.get(record.event_id) is None:
                return False
            await redact_once(self._intent(), record.room_id, record.event_id, "expired secret")
            await self._repo.remove(record.event_id)
        log.info("Removed the expiring message %s", record.event_id)
        return True
