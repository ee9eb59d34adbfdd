"""Durable intake of Matrix events and their ordered, per-room processing.

A transaction from the homeserver is stored (its id and the events, in one database
transaction) before it is acknowledged; this pump then hands the stored events to the router,
one room at a time in arrival order, rooms in parallel, and deletes each row when it has been
handled. A crash re-delivers what was not finished (handlers are idempotent by event id), and a
slow room never blocks the others (docs/architecture.md §4).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bridge.backoff import Backoff
from bridge.db.records import InboxEventRecord as InboxItem

log = logging.getLogger("bridge.core.portal.inbox")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]

HANDLER_ATTEMPTS = 3
RETRY_BASE_DELAY = 1.0
FETCH_LIMIT = 200


class InboxStore(Protocol):
    async def accept(self, txn_id: str, body_hash: str, events: list[dict[str, Any]]) -> bool: ...

    async def pending(self, after_id: int, limit: int) -> list[InboxItem]: ...

    async def done(self, item_id: int) -> None: ...


class MatrixInbox:
    """The transaction sink of :class:`bridge.matrix.appservice.BridgeAppService`."""

    def __init__(
        self, store: InboxStore, handle_event: EventHandler, handle_ephemeral: EventHandler
    ) -> None:
        self._store = store
        self._handle_event = handle_event
        self._handle_ephemeral = handle_ephemeral
        self._wakeup = asyncio.Event()
        self._rooms: dict[str, asyncio.Queue[InboxItem]] = {}
        self._room_tasks: dict[str, asyncio.Task[None]] = {}
        self._last_id = 0

    async def accept_transaction(
        self,
        txn_id: str,
        body_hash: str,
        events: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> bool:
        fresh = await self._store.accept(txn_id, body_hash, events)
        self._wakeup.set()
        # Typing and receipts are never retried by the homeserver (docs/matrix-side.md §1.3), so
        # they are handled now and not stored.
        for edu in ephemeral if fresh else []:
            try:
                await self._handle_ephemeral(edu)
            except Exception:
                log.exception("Ephemeral event of type %s failed", edu.get("type"))
        return fresh

    async def run(self) -> None:
        """Pump stored events into per-room queues until cancelled."""
        try:
            while True:
                self._wakeup.clear()
                items = await self._store.pending(self._last_id, FETCH_LIMIT)
                for item in items:
                    self._last_id = max(self._last_id, item.id)
                    self._queue_for(item.room_id).put_nowait(item)
                if len(items) < FETCH_LIMIT:
                    await self._wakeup.wait()
        finally:
            for task in self._room_tasks.values():
                task.cancel()
            await asyncio.gather(*self._room_tasks.values(), return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every queued event has been handled (used at shutdown and in tests)."""
        await asyncio.gather(*(q.join() for q in list(self._rooms.values())))

    def _queue_for(self, room_id: str) -> asyncio.Queue[InboxItem]:
        queue = self._rooms.get(room_id)
        if queue is None:
            queue = self._rooms[room_id] = asyncio.Queue()
            self._room_tasks[room_id] = asyncio.create_task(
                self._room_worker(queue), name=f"matrix-room-{room_id}"
            )
        return queue

    async def _room_worker(self, queue: asyncio.Queue[InboxItem]) -> None:
        while True:
            item = await queue.get()
            try:
                await self._handle_with_retries(item)
                await self._store.done(item.id)
            except Exception:
                log.exception("Could not finish Matrix event %s", item.event.get("event_id"))
            finally:
                queue.task_done()

    async def _handle_with_retries(self, item: InboxItem) -> None:
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                await self._handle_event(item.event)
                return
            except Exception:
                event_id = item.event.get("event_id")
                if attempt == HANDLER_ATTEMPTS:
                    log.exception("Dropping Matrix event %s after %d attempts", event_id, attempt)
                    return
                log.warning(
                    "Matrix event %s failed (attempt %d), retrying",
                    event_id,
                    attempt,
                    exc_info=True,
                )
                await Backoff(RETRY_BASE_DELAY).sleep(attempt)
