"""The receiving half of :class:`~bridge.session.client.SessionClient`: poll our own swarm's
namespace 0 (§6.6) and hand every verified message to the subscribers, one at a time,
acknowledging it only once they all returned (the delivery contract of
:mod:`bridge.session.client`).

Alone, the loop sends its own ``batch`` every ``poll_interval``. With a shared
:class:`~bridge.session.swarm_polling.SwarmPolling` (the bridge's accounts), it waits for the
polling's next tick instead, so that the accounts of a swarm are polled in shared batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bridge import metrics
from bridge.backoff import Backoff
from bridge.ids import SessionID
from bridge.session.dm_events import Subscribers, SwarmGapEvent, decode_inbox_message, make_event
from bridge.session.errors import SessionError
from bridge.session.onetoone import DirectMessage, MessageKeys
from bridge.session.poller import Gap, PolledMessage, Poller, PollStateStore
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.rpc import SnodeClient
from bridge.session.swarm_polling import SwarmPolling
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.session.dm_inbox")

#: Longest wait between polls while the Session network cannot be reached: a minute, the cap
#: of every transient retry (docs/architecture.md §4.7), so that messages flow again within a
#: minute of the network's return, however long it was away.
MAX_BACKOFF_S = 60.0


class InboxLoop:
    """Polls one account's inbox until stopped; see the client's module docstring."""

    def __init__(
        self,
        name: str,
        keys: MessageKeys,
        signer: Ed25519Signer,
        snode: SnodeClient,
        state: PollStateStore,
        subscribers: Subscribers,
        *,
        sent_by_us: Callable[[int], bool],
        poll_interval: float,
        max_count: int | None,
        polling: SwarmPolling | None = None,
    ) -> None:
        self._name = name
        self._keys = keys
        self._session_id = SessionID.parse(keys.session_id)
        self._signer = signer
        self._snode = snode
        self._state = state
        self._subscribers = subscribers
        self._sent_by_us = sent_by_us
        self.poll_interval = poll_interval
        self._max_count = max_count
        self._polling = polling
        self._failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._delivering = False

    def __repr__(self) -> str:
        return self._name

    async def start(self) -> None:
        """Start polling (a no-op if already running)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"session-dm-{self}")

    async def stop(self, timeout: float) -> None:
        """Stop polling. An event being delivered is finished (and acknowledged) first,
        for up to ``timeout`` seconds; then the poller is cancelled. Streams end."""
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        if task is not None:
            if not self._delivering:
                task.cancel()  # polling or waiting: nothing in hand that needs finishing
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                log.warning("%s: delivery did not finish in %.1fs; cancelling", self, timeout)
            await cancel_and_wait(task)
        self._subscribers.finish_streams()

    def poll_now(self) -> None:
        """Poll at once instead of waiting for the rest of the interval."""
        self._wake.set()

    def _decode(self, data: bytes) -> DirectMessage:
        return decode_inbox_message(self._keys, data)

    def _new_poller(self) -> Poller[DirectMessage]:
        return Poller(
            self._snode, self._signer, self._state, self._decode, max_count=self._max_count
        )

    async def _run(self) -> None:
        poller = self._new_poller()
        while not self._stopping:
            try:
                await self._poll_and_deliver(poller)
            except asyncio.CancelledError:
                raise
            except Exception:
                # E.g. the poll-state store failed in ack (its database is down). A fresh
                # poller forgets what was in flight and re-reads from the persisted cursors:
                # re-delivery, never loss. It waits as after a failed poll (backoff).
                self._failures += 1
                if self._failures & (self._failures - 1) == 0:  # 1st, 2nd, 4th... in a row
                    log.exception(
                        "%s: receive loop failed (%d in a row); restarting the poller",
                        self,
                        self._failures,
                    )
                poller = self._new_poller()
            if not poller.more and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_wait())
                self._wake.clear()

    def _next_wait(self) -> float:
        """The poll interval, doubled per failure in a row while the network is unreachable
        (at most 2**10 times the interval, and at most :data:`MAX_BACKOFF_S`). Polling in
        shared batches, the loop waits for the next tick instead while polls succeed."""
        if self._polling is not None and self._failures == 0:
            return self._polling.until_tick(self.poll_interval)
        backoff = Backoff(self.poll_interval, MAX_BACKOFF_S)
        return backoff.delay(min(self._failures, 10) + 1)

    async def _poll_and_deliver(self, poller: Poller[DirectMessage]) -> None:
        started = time.monotonic()
        try:
            if self._polling is not None:
                events = await self._polling.poll(poller)
            else:
                events = await poller.poll_once()
        except SessionError as e:
            self._failures += 1
            metrics.poll_failed("swarm", metrics.SWARM)
            if self._failures & (self._failures - 1) == 0:  # 1st, 2nd, 4th, 8th... in a row
                log.warning("%s: poll failed (%d in a row): %s", self, self._failures, e)
            events, poller.more = [], False
        else:
            self._failures = 0
        metrics.observe_poll("swarm", metrics.SWARM, time.monotonic() - started)
        for item in events:
            if self._stopping:
                return
            self._delivering = True
            try:
                await self._handle(poller, item)
            finally:
                self._delivering = False

    async def _handle(
        self, poller: Poller[DirectMessage], item: PolledMessage[DirectMessage] | Gap
    ) -> None:
        if isinstance(item, Gap):
            await self._subscribers.deliver(SwarmGapEvent(item.node, item.last_hash))
            return
        event = make_event(
            self._session_id,
            item.body,
            hash_=item.hash,
            expiry=item.expiry,
            from_this_client=self._sent_by_us(item.body.timestamp),
            data=item.data,
        )
        await self._subscribers.deliver(event)
        await poller.ack(item)
