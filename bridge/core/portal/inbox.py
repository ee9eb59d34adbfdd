"""Durable intake of Matrix events and their ordered, per-room processing.

A transaction from the homeserver is stored (its id and the events, in one database
transaction) before it is acknowledged; this pump then hands the stored events to the router,
one room at a time in arrival order, rooms in parallel, and deletes each row when it has been
handled. A crash re-delivers what was not finished (handlers are idempotent by event id), and a
slow room never blocks the others (docs/architecture.md §4).

Failures follow the policy of docs/architecture.md §4.7: a transient one (the database or the
homeserver away) holds that room's queue and is retried with capped backoff for as long as it
takes, keeping the room's order while other rooms go on; a permanent one is tried
:data:`~bridge.core.portal.failures.PERMANENT_ATTEMPTS` times, then the event is parked
(``park``) and the room goes on. If the pump itself fails (the database is down while it reads)
it ends with the error, for its supervisor to start it again; it then reads every stored event
afresh, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bridge import metrics
from bridge.core.portal.failures import TRANSIENT_BACKOFF, Transient, attempt_or_park
from bridge.db.records import InboxEventRecord as InboxItem

log = logging.getLogger("bridge.core.portal.inbox")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
# (the event, the error text, tries): keep an event that failed for good
ParkEvent = Callable[[dict[str, Any], str, int], Awaitable[None]]

FETCH_LIMIT = 200


async def _drop(event: dict[str, Any], error: str, tries: int) -> None:
    log.error("Dropping Matrix event %s: %s", event.get("event_id"), error)


def describe_event(event: dict[str, Any]) -> str:
    """A Matrix event as the log and the dead-letter list name it."""
    return f"Matrix event {event.get('event_id')} ({event.get('type')}) in {event.get('room_id')}"


class InboxStore(Protocol):
    async def accept(self, txn_id: str, body_hash: str, events: list[dict[str, Any]]) -> bool: ...

    async def pending(self, after_id: int, limit: int) -> list[InboxItem]: ...

    async def done(self, item_id: int) -> None: ...

    async def requeue(self, event: dict[str, Any], txn_id: str) -> None: ...


class MatrixInbox:
    """The transaction sink of :class:`bridge.matrix.appservice.BridgeAppService`."""

    def __init__(
        self,
        store: InboxStore,
        handle_event: EventHandler,
        handle_ephemeral: EventHandler,
        *,
        park: ParkEvent = _drop,
    ) -> None:
        self._store = store
        self._handle_event = handle_event
        self._handle_ephemeral = handle_ephemeral
        self._park = park
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
            if not isinstance(edu, dict):  # the appservice drops these; never let one raise
                log.warning("Ignoring an ephemeral event that is not an object")
                continue
            try:
                await self._handle_ephemeral(edu)
            except Exception:
                log.exception("Ephemeral event of type %r failed", edu.get("type"))
        return fresh

    async def run(self) -> None:
        """Pump stored events into per-room queues until cancelled (or until reading the
        store fails: the error ends the run, and the next run starts from what is stored)."""
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
            tasks = list(self._room_tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Forget the queues: what they held is still stored and is read again.
            self._rooms.clear()
            self._room_tasks.clear()
            self._last_id = 0

    async def requeue(self, event: dict[str, Any], txn_id: str) -> None:
        """Store ``event`` again (a parked event an admin retries) and handle it in turn."""
        await self._store.requeue(event, txn_id)
        self._wakeup.set()

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
                await self._until_done(item)
            finally:
                queue.task_done()

    async def _until_done(self, item: InboxItem) -> None:
        """Handle ``item`` (or park it) and forget it, waiting out transient failures."""
        event, what = item.event, describe_event(item.event)

        async def park(error: BaseException, tries: int) -> None:
            await self._park(event, f"{type(error).__name__}: {error}", tries)

        async def handle() -> None:
            await self._handle_event(event)

        await self._patiently(what, lambda: attempt_or_park(handle, what, park))
        await self._patiently(what, lambda: self._store.done(item.id))

    async def _patiently(self, what: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step`` until it succeeds; transient failures wait with capped backoff."""
        waits = 0
        while True:
            try:
                await step()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Transient (attempt_or_park's verdict, or a database error of done()); or a
                # bug in parking, which must not end this room's worker either.
                waits += 1
                metrics.failed(metrics.TRANSIENT, "matrix")
                if waits & (waits - 1) == 0:  # 1st, 2nd, 4th... wait in a row
                    transient = isinstance(e, Transient)
                    log.warning(
                        "%s must wait (%d): %s", what, waits, e, exc_info=None if transient else e
                    )
                await TRANSIENT_BACKOFF.sleep(waits)
