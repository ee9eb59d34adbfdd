"""Polls one account's swarm namespaces with one ``batch`` per cycle (§6.6).

State is kept through :class:`PollStateStore`: ``last_hash`` per (node, account, namespace),
because ordering is per node, and a set of seen hashes, because the same message arrives from
every node of the swarm. Advancing is explicit: :meth:`Poller.ack` is called by the consumer
once it has committed a message, and a node's cursor only moves past messages that are all
acknowledged (or were seen before). A crash therefore re-delivers instead of losing.

A poller asks one node of the swarm and stays with it while it answers, so its cursors exist
on that node only. A new poller (after a restart, or after a failure) has no node in memory: it
goes to the node of the swarm holding its stored cursors, the one whose cursors moved last if
several do (:meth:`PollStateStore.cursor_nodes`), not to a random one, which would send
everything the swarm still holds (14 days of messages) once more (docs/session-protocol.md
§6.6).

A node that no longer knows our ``last_hash`` (expired, or the node lost/never had the data)
answers with everything it has from the start; the poller detects this with ``get_expiries``
in the same batch and reports a :class:`Gap` instead of silently starting over.

A cycle is :meth:`Poller.plan` (the subrequests), a ``batch`` and :meth:`Poller.handle` (the
results); :meth:`Poller.poll_once` sends the batch itself, while
:mod:`bridge.session.swarm_polling` sends the plans of the accounts of a swarm in shared
batches (docs/session-protocol.md §6.6).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bridge.session.errors import SessionError
from bridge.session.snode import auth, calls
from bridge.session.snode.errors import InvalidResponse, SnodeError
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, SubResult, parse_retrieve
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.session.poller")

T = TypeVar("T")

#: A well-formed hash no message has, so ``get_expiries`` stays valid for a node we have no
#: cursor on yet (every subrequest of a batch is built before the node is known).
_PROBE_HASH = "A" * 43


@dataclass(frozen=True)
class PolledMessage(Generic[T]):
    """A new message of the polled account, decoded by the poller's ``decode``."""

    hash: str
    namespace: int
    timestamp: int
    expiry: int
    data: bytes
    body: T
    node: str  # Ed25519 pubkey hex of the node it came from


@dataclass(frozen=True)
class Gap:
    """``node`` no longer knows ``last_hash`` in ``namespace``: messages may have been lost."""

    node: str
    namespace: int
    last_hash: str


class PollStateStore(Protocol):
    """Where poll cursors and seen hashes live (in memory here; the bridge persists them)."""

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """The cursor of (node, account, namespace)."""
        ...

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """Move the cursor of (node, account, namespace)."""
        ...

    async def cursor_nodes(self, account: str) -> dict[str, int]:
        """Nodes (Ed25519 hex) holding a cursor of ``account``, each with a number that is
        larger for a node whose cursor moved later (e.g. the time of its last move, ms)."""
        ...

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for ``account``."""
        ...

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """Record a committed hash (it may be forgotten after ``expiry``, ms)."""
        ...


class MemoryPollState:
    """An in-memory :class:`PollStateStore`."""

    def __init__(self) -> None:
        self.cursors: dict[tuple[str, str, int], str] = {}
        self.hashes: dict[str, dict[str, int]] = {}
        #: account -> node -> order of its cursors' last move (for :meth:`cursor_nodes`).
        self.node_moves: dict[str, dict[str, int]] = {}
        self._move_order = itertools.count(1)

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """See :class:`PollStateStore`."""
        return self.cursors.get((node, account, namespace))

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """See :class:`PollStateStore`."""
        self.cursors[(node, account, namespace)] = value
        self.node_moves.setdefault(account, {})[node] = next(self._move_order)

    async def cursor_nodes(self, account: str) -> dict[str, int]:
        """See :class:`PollStateStore`."""
        return dict(self.node_moves.get(account, {}))

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """See :class:`PollStateStore`."""
        known = self.hashes.get(account, {})
        return {h for h in hashes if h in known}

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """See :class:`PollStateStore`."""
        self.hashes.setdefault(account, {})[hash_] = expiry

    def prune(self, now_ms: int) -> None:
        """Forget seen hashes whose messages have expired everywhere."""
        for known in self.hashes.values():
            for h in [h for h, exp in known.items() if exp < now_ms]:
                del known[h]


PollEvent = PolledMessage[T] | Gap


@dataclass(frozen=True)
class PollPlan:
    """One cycle of one account: its subrequests, and the cursors they were built from.
    ``held``: while the poller has no node in memory, the nodes of the swarm holding its
    cursors, each with its last move (:meth:`PollStateStore.cursor_nodes`); else empty."""

    calls: tuple[Call, ...]
    cursors: dict[tuple[str, int], str]
    held: tuple[tuple[ServiceNode, int], ...] = ()


def stored_prefer(helds: Iterable[Sequence[tuple[ServiceNode, int]]]) -> ServiceNode | None:
    """The node to ask when none is in memory, from the ``held`` of the plans of one batch:
    the node holding the most of their accounts' cursors, the one whose cursors moved last
    on a tie; None if none holds any (any node will do)."""
    ranks: dict[ServiceNode, tuple[int, int]] = {}
    for held in helds:
        for node, moved in held:
            count, last = ranks.get(node, (0, 0))
            ranks[node] = (count + 1, max(last, moved))
    return max(ranks, key=ranks.__getitem__) if ranks else None


class Poller(Generic[T]):
    """Polls ``signer``'s own swarm; see the module docstring."""

    def __init__(
        self,
        client: SnodeClient,
        signer: auth.Signer,
        state: PollStateStore,
        decode: Callable[[bytes], T],
        *,
        namespaces: Sequence[int] = (0,),
        max_count: int | None = None,
    ) -> None:
        if not 1 <= len(namespaces) <= 19:
            raise ValueError("poll 1 to 19 namespaces (one batch slot is the gap check)")
        self._client = client
        self._signer = signer
        self._state = state
        self._decode = decode
        self._namespaces = list(namespaces)
        self._max_count = max_count
        self._account = signer.session_id
        self._node: ServiceNode | None = None
        self._in_flight: dict[str, PolledMessage[T]] = {}
        self._done: set[str] = set()
        self._pending: dict[tuple[str, int], deque[str]] = {}
        self._gaps_reported: set[tuple[str, int, str]] = set()
        #: True when a node said it has more than it returned: poll again without waiting.
        self.more = False

    @property
    def account(self) -> str:
        """The polled account (its ``05…`` id)."""
        return self._account

    async def poll_once(self) -> list[PollEvent[T]]:
        """One batch: gap check plus one ``retrieve`` per namespace; returns new events."""
        plan = await self.plan()
        prefer = self._node or stored_prefer([plan.held])
        node, subs = await self._client.batch(self._account, plan.calls, prefer=prefer)
        return await self.handle(node, plan, subs)

    async def plan(self) -> PollPlan:
        """The subrequests of one cycle (gap check, then one ``retrieve`` per namespace),
        signed for whichever node of the swarm they go to. :meth:`poll_once` sends them in a
        ``batch`` of their own; :mod:`bridge.session.swarm_polling` shares one ``batch``
        among the accounts of a swarm. Either way their results go to :meth:`handle`."""
        swarm = await self._client.get_swarm(self._account)
        cursors = await self._load_cursors(swarm)

        def probe(node: ServiceNode) -> list[str]:
            known = [cursors[k] for k in cursors if k[0] == node.pubkey_ed25519]
            return known or [_PROBE_HASH]

        requests = [_get_expiries_call(self._signer, probe)]
        for ns in self._namespaces:
            requests.append(
                calls.retrieve_call(
                    self._signer,
                    namespace=ns,
                    last_hash=_cursor_of(cursors, ns),
                    max_count=self._max_count,
                )
            )
        return PollPlan(tuple(requests), cursors, await self._held(swarm, cursors))

    async def handle(
        self, node: ServiceNode, plan: PollPlan, subs: Sequence[SubResult]
    ) -> list[PollEvent[T]]:
        """The results of ``plan``'s subrequests from ``node`` (same order): new events."""
        if len(subs) != len(plan.calls):
            raise InvalidResponse(f"{len(subs)} results for {len(plan.calls)} subrequests")
        self._node = node
        return await self._process(node, plan.cursors, subs)

    async def ack(self, message: PolledMessage[T]) -> None:
        """The consumer committed ``message``: remember it and advance cursors past it."""
        await self._state.mark_seen(self._account, message.hash, message.expiry)
        self._in_flight.pop(message.hash, None)
        self._done.add(message.hash)
        await self._advance()

    async def run(self, interval: float = 5.0) -> AsyncIterator[PollEvent[T]]:
        """Poll forever, every ``interval`` seconds (at once while nodes report ``more``)."""
        while True:
            try:
                events = await self.poll_once()
            except SnodeError as e:
                log.warning("poll of %s… failed: %s", self._account[:8], e)
                events, self.more = [], False
            for event in events:
                yield event
            if not self.more:
                await asyncio.sleep(interval)

    # --- internals ----------------------------------------------------------------------------

    async def _load_cursors(self, swarm: Sequence[ServiceNode]) -> dict[tuple[str, int], str]:
        cursors: dict[tuple[str, int], str] = {}
        for node in swarm:
            for ns in self._namespaces:
                lh = await self._state.get_last_hash(node.pubkey_ed25519, self._account, ns)
                if lh:
                    cursors[(node.pubkey_ed25519, ns)] = lh
        return cursors

    async def _held(
        self, swarm: Sequence[ServiceNode], cursors: dict[tuple[str, int], str]
    ) -> tuple[tuple[ServiceNode, int], ...]:
        """See :class:`PollPlan` (empty once a node answered: it is the one to stay with)."""
        if self._node is not None or not cursors:
            return ()
        moved = await self._state.cursor_nodes(self._account)
        holding = {pubkey for pubkey, _ in cursors}
        return tuple(
            (n, moved.get(n.pubkey_ed25519, 0)) for n in swarm if n.pubkey_ed25519 in holding
        )

    async def _process(
        self, node: ServiceNode, cursors: dict[tuple[str, int], str], subs: Sequence[SubResult]
    ) -> list[PollEvent[T]]:
        events: list[PollEvent[T]] = []
        known = _expiries(subs[0])
        self.more = False
        for ns, sub in zip(self._namespaces, subs[1:], strict=True):
            sub.raise_for_status()
            result = parse_retrieve(node, ns, sub.body)
            self.more = self.more or result.more
            last = cursors.get((node.pubkey_ed25519, ns))
            if last is not None and known is not None and last not in known:
                gap = Gap(node.pubkey_ed25519, ns, last)
                if (gap.node, ns, last) not in self._gaps_reported:
                    self._gaps_reported.add((gap.node, ns, last))
                    log.warning(
                        "node %s:%d lost our last_hash in namespace %d", node.ip, node.port, ns
                    )
                    events.append(gap)
            hashes = [m.hash for m in result.messages]
            self._done.update(await self._state.seen(self._account, hashes))
            self._pending[(node.pubkey_ed25519, ns)] = deque(hashes)
            for m in result.messages:
                if m.hash in self._done or m.hash in self._in_flight:
                    continue
                polled = self._make(node, ns, m.hash, m.timestamp, m.expiry, m.data)
                if polled is None:
                    await self._state.mark_seen(self._account, m.hash, m.expiry)
                    self._done.add(m.hash)
                    continue
                self._in_flight[m.hash] = polled
                events.append(polled)
        await self._advance()
        return events

    def _make(
        self, node: ServiceNode, ns: int, h: str, ts: int, exp: int, data: bytes
    ) -> PolledMessage[T] | None:
        try:
            body = self._decode(data)
        except SessionError as e:
            # Bad input never stops polling: one line, drop the item, carry on (design §5).
            log.warning("dropping undecodable message %s in namespace %d: %s", h, ns, e)
            return None
        return PolledMessage(h, ns, ts, exp, data, body, node.pubkey_ed25519)

    async def _advance(self) -> None:
        for (node, ns), queue in self._pending.items():
            last = None
            while queue and queue[0] in self._done:
                last = queue.popleft()
            if last is not None:
                await self._state.set_last_hash(node, self._account, ns, last)


def _cursor_of(cursors: dict[tuple[str, int], str], ns: int) -> calls.LastHashFn:
    def last_hash(node: ServiceNode) -> str | None:
        return cursors.get((node.pubkey_ed25519, ns))

    return last_hash


def _get_expiries_call(signer: auth.Signer, hashes: Callable[[ServiceNode], list[str]]) -> Call:
    def params(node: ServiceNode, now: int) -> dict[str, Any]:
        return auth.sign_request(signer, "get_expiries", None, now, messages=hashes(node))

    return Call("get_expiries", params)


def _expiries(sub: SubResult) -> set[str] | None:
    """Hashes the node still knows; ``None`` if the check itself failed (no gap claimed)."""
    exp = sub.body.get("expiries") if sub.ok and isinstance(sub.body, dict) else None
    return set(exp) if isinstance(exp, dict) else None
