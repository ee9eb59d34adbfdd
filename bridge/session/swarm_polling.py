"""Polls many accounts' inboxes with shared ``batch`` requests, per swarm (§6.6, §6.10).

Every account's :class:`~bridge.session.poller.Poller` keeps its own state (cursors, seen
hashes, acks, gap checks); this module only replaces how its subrequests travel. Accounts whose
ids map to the same swarm are polled together:

* a poll is asked for with :meth:`SwarmPolling.poll`; requests that arrive close together (the
  inbox loops wait for the same tick, :meth:`SwarmPolling.until_tick`) are gathered, grouped by
  swarm, and each swarm's accounts are packed into ``batch`` requests of at most
  :data:`~bridge.session.snode.rpc.BATCH_MAX` subrequests (one account's subrequests never
  span two batches): with ``k`` subrequests per account, ``n`` accounts of a swarm cost
  ``ceil(n / floor(20 / k))`` requests per cycle instead of ``n``;
* each subrequest is signed by its own account's key, and each account's results go back to
  its poller (:meth:`~bridge.session.poller.Poller.handle`), so ordering, acks and gap
  detection are exactly those of a poller polling alone;
* swarms, and the batches within a swarm, are sent concurrently: a swarm that is down or slow
  delays only its own accounts, which get the error (their loop backs off, as alone);
* a 421 in one account's subresults means that account moved (§6.2, §6.14): its new swarm is
  taken from the 421 body (or looked up again) and it is polled again at once in its new
  group; the other accounts of the batch keep their results;
* a swarm's batches go to the node that answered last (cursors exist only where we read);
  when none did yet (after a restart) they go to the node holding the most of the batch's
  accounts' stored cursors (:func:`~bridge.session.poller.stored_prefer`), so that a restart
  does not re-read everything the swarm holds from a node we never read;
* an account whose swarm is not known yet is looked up on its own (every lookup concurrently)
  and joins the next gathering; a failed lookup fails only its account's poll.

The accounts of a swarm get their outcomes at the same moment, so idle loops wait for the
same next tick and stay together; a loop that was busy delivering joins them at the first tick
it is ready for. Where one cycle takes longer than the poll interval (a slow network or
database), loops can settle on different ticks and a swarm's accounts are split over a few
batches more; the cost stays per swarm, not per account.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.session.poller import Poller, PollEvent, PollPlan, stored_prefer
from bridge.session.snode.errors import SnodeError, SwarmUnavailable, WrongSwarm
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import SubResult
from bridge.session.snode.rpc import BATCH_MAX, SnodeClient
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.session.swarm_polling")

T = TypeVar("T")

#: A gathering is sent once no new request came for this long (seconds)...
GATHER_QUIET_S = 0.02
#: ...or this long after its first request, whichever is first.
GATHER_MAX_S = 0.25
#: 421s in a row for one account before its poll fails (and its loop backs off).
MAX_MOVES = 3

SwarmKey = frozenset[str]


@dataclass(eq=False)
class _Request:
    poller: Poller[Any]
    future: asyncio.Future[list[PollEvent[Any]]]
    plan: PollPlan | None = None
    #: What this cycle gave: handed over for a whole swarm at once (:meth:`settle`).
    outcome: list[PollEvent[Any]] | BaseException | None = None

    @property
    def account(self) -> str:
        return self.poller.account

    def settle(self) -> None:
        outcome, self.outcome = self.outcome, None
        if isinstance(outcome, BaseException):
            self.fail(outcome)
        else:
            self.resolve(outcome if outcome is not None else [])

    def resolve(self, events: list[PollEvent[Any]]) -> None:
        if not self.future.done():
            self.future.set_result(events)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass
class _Batch:
    swarm: SwarmKey
    requests: list[_Request] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(r.plan.calls) for r in self.requests if r.plan is not None)


class SwarmPolling:
    """Shared polling of many accounts; see the module docstring."""

    def __init__(
        self,
        snode: SnodeClient,
        *,
        quiet: float = GATHER_QUIET_S,
        max_gather: float = GATHER_MAX_S,
    ) -> None:
        self._snode = snode
        self._quiet = quiet
        self._max_gather = max_gather
        self._waiting: list[_Request] = []
        self._open: set[_Request] = set()  # asked for and not answered yet
        self._arrivals = 0
        self._gathering: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefer: dict[SwarmKey, ServiceNode] = {}
        self._stale: set[str] = set()  # accounts whose swarm must be looked up again
        self._moves: dict[str, int] = {}
        self._epoch: float | None = None
        self._closed = False
        #: Polls answered so far (any outcome but a failure), for diagnostics and benchmarks.
        self.polls = 0

    def until_tick(self, interval: float) -> float:
        """Seconds until the next multiple of ``interval`` since the first call: loops that
        poll every ``interval`` wait for the same instants, so their polls share batches."""
        now = asyncio.get_running_loop().time()
        if self._epoch is None:
            self._epoch = now
        if interval <= 0:
            return 0.0
        elapsed = now - self._epoch
        return (math.floor(elapsed / interval) + 1) * interval - elapsed

    async def poll(self, poller: Poller[T]) -> list[PollEvent[T]]:
        """One poll of ``poller``'s account, in a batch shared with the other accounts of its
        swarm; returns what :meth:`Poller.poll_once` would. Raises the
        :class:`~bridge.session.errors.SessionError` of a failed poll."""
        if self._closed:
            raise SwarmUnavailable("shared polling stopped")
        future: asyncio.Future[list[PollEvent[Any]]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Request(poller, future))
        return await future

    async def close(self) -> None:
        """Stop: pending and running polls fail; later polls are refused."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            await cancel_and_wait(task)
        self._waiting = []
        for request in list(self._open):
            request.fail(SwarmUnavailable("shared polling stopped"))

    # --- gathering --------------------------------------------------------------------------

    def _enqueue(self, request: _Request) -> None:
        if self._closed:
            request.fail(SwarmUnavailable("shared polling stopped"))
            return
        if request not in self._open:
            self._open.add(request)
            request.future.add_done_callback(lambda _: self._open.discard(request))
        self._waiting.append(request)
        self._arrivals += 1
        if self._gathering is None:
            self._gathering = self._spawn(self._gather())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name="session-swarm-polling")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _gather(self) -> None:
        """Wait for the requests of this instant, then send them."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while True:
                seen = self._arrivals
                await asyncio.sleep(self._quiet)
                if self._arrivals == seen or loop.time() - started >= self._max_gather:
                    break
        finally:
            self._gathering = None
            requests, self._waiting = self._waiting, []
        try:
            await self._send_all(requests)
        except Exception as e:  # a bug: the loops waiting on it get it, none waits forever
            for request in requests:
                request.fail(e)

    async def _send_all(self, requests: list[_Request]) -> None:
        by_swarm: dict[SwarmKey, list[_Request]] = {}
        for request in requests:
            if request.future.done():  # its loop stopped meanwhile
                continue
            swarm = self._known_swarm(request.account)
            if swarm is None:
                self._spawn(self._look_up(request))
            else:
                by_swarm.setdefault(swarm, []).append(request)
        log.debug("polling %d accounts in %d swarms", len(requests), len(by_swarm))
        await asyncio.gather(*(self._poll_swarm(s, reqs) for s, reqs in by_swarm.items()))

    def _known_swarm(self, account: str) -> SwarmKey | None:
        if account in self._stale:
            return None
        swarm = self._snode.pool.cached_swarm(account)
        return frozenset(n.pubkey_ed25519 for n in swarm) if swarm else None

    async def _look_up(self, request: _Request) -> None:
        """Find an account's swarm on its own; it then joins the next gathering."""
        refresh = request.account in self._stale
        try:
            await self._snode.get_swarm(request.account, refresh=refresh)
        except Exception as e:  # its loop backs off (a SessionError) or restarts (a bug)
            request.fail(e)
            return
        self._stale.discard(request.account)
        if not request.future.done():
            self._enqueue(request)

    # --- one swarm ----------------------------------------------------------------------------

    async def _poll_swarm(self, swarm: SwarmKey, requests: list[_Request]) -> None:
        """Poll one swarm's accounts; their loops get the outcomes all at once, so that they
        wait for the same next tick and share batches again then."""
        planned = await asyncio.gather(*(self._plan(r) for r in requests))
        batches = _pack(swarm, [r for r, ok in zip(requests, planned, strict=True) if ok])
        await asyncio.gather(*(self._send(batch) for batch in batches))
        for request in requests:
            request.settle()

    @staticmethod
    async def _plan(request: _Request) -> bool:
        try:
            request.plan = await request.poller.plan()
        except Exception as e:  # e.g. the poll-state store failed: that account's poll fails
            request.outcome = e
            return False
        return True

    async def _send(self, batch: _Batch) -> None:
        plans = [r.plan for r in batch.requests if r.plan is not None]
        calls = [c for plan in plans for c in plan.calls]
        prefer = self._prefer.get(batch.swarm) or stored_prefer(p.held for p in plans)
        try:
            node, subs = await self._snode.batch(
                batch.requests[0].account, calls, prefer=prefer, mixed_accounts=True
            )
            if len(subs) != len(calls):
                raise SwarmUnavailable(f"{len(subs)} results for {len(calls)} subrequests")
        except SnodeError as e:
            log.debug("batch of %d accounts failed: %s", len(batch.requests), e)
            for request in batch.requests:
                request.outcome = e
            return
        self._prefer[batch.swarm] = node
        jobs, offset = [], 0
        for request in batch.requests:
            assert request.plan is not None
            mine = subs[offset : offset + len(request.plan.calls)]
            offset += len(request.plan.calls)
            jobs.append(self._dispatch(request, node, request.plan, mine))
        await asyncio.gather(*jobs)

    async def _dispatch(
        self, request: _Request, node: ServiceNode, plan: PollPlan, subs: Sequence[SubResult]
    ) -> None:
        if request.future.done():
            return
        moved = next((sub for sub in subs if sub.code == 421), None)
        if moved is not None:
            self._moved(request, moved)
            return
        self._moves.pop(request.account, None)
        try:
            events = await request.poller.handle(node, plan, subs)
        except Exception as e:  # goes to the account's loop, which handles it as alone
            request.outcome = e
        else:
            self.polls += 1
            request.outcome = events

    def _moved(self, request: _Request, sub: SubResult) -> None:
        """421 for this account alone: take its new swarm, poll it again at once."""
        account = request.account
        moves = self._moves[account] = self._moves.get(account, 0) + 1
        try:
            swarm = self._snode.update_swarm(account, sub.body)
        except SnodeError as e:
            log.info("%s… moved swarm; unusable 421 body (%s): looking it up", account[:8], e)
            self._stale.add(account)
        else:
            log.info("%s… moved to a swarm of %d nodes", account[:8], len(swarm))
        if moves > MAX_MOVES:
            self._moves.pop(account, None)
            self._stale.add(account)
            request.outcome = WrongSwarm("swarm kept changing (421)", status=421)
            return
        request.poller.more = True  # its loop polls again without waiting
        request.outcome = []


def _pack(swarm: SwarmKey, requests: Sequence[_Request]) -> list[_Batch]:
    """Fill batches of at most :data:`BATCH_MAX` subrequests, each account's in one batch."""
    batches: list[_Batch] = []
    current = _Batch(swarm)
    for request in requests:
        assert request.plan is not None
        size = len(request.plan.calls)
        if current.requests and current.size + size > BATCH_MAX:
            batches.append(current)
            current = _Batch(swarm)
        current.requests.append(request)
    if current.requests:
        batches.append(current)
    return batches
