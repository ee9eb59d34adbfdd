"""Polls the swarms of many groups v2 at once (groups-v2.md §6.2, §6.3).

* Groups whose ids map to the same swarm are polled together: one ``batch`` per swarm per
  cycle, each group contributing one ``retrieve`` per namespace in the order -11, 11, 13, 14,
  12 (keys last, §6.2). A storage node takes at most 20 sub-requests per batch
  (session-protocol §6.10), so a swarm with more than 4 groups needs ``ceil(groups / 4)``
  batches per cycle; a group's five retrieves always share one batch, which the processing
  order relies on.
* Each group's new messages of one batch are processed in §6.3 order by
  :meth:`~bridge.session.groups.group_state.GroupState.apply`: keys, Info, Members, kicked
  notes, messages.
* ``last_hash`` is kept per (node, group, namespace) in a
  :class:`~bridge.session.groups.store.GroupStore`; a cursor moves only past messages that
  are done: keys/config/kicked messages once stored and applied, ns 11 messages once the
  consumer called :meth:`GroupPoller.ack`. A crash re-delivers; seen hashes de-duplicate.
* A 401 on 11-14 means our subaccount was revoked (§6.2, §7.10): the group is reported
  removed and no longer polled (-11 is still read in that batch, and a kicked note wins).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.session.groups.events import (
    GroupEvent,
    GroupRemovedEvent,
    MessageEvent,
    RemovalReason,
)
from bridge.session.groups.group_state import (
    NS_MESSAGES,
    NS_REVOKED,
    POLL_NAMESPACES,
    GroupState,
)
from bridge.session.groups.store import GroupStore, RawGroupMessage
from bridge.session.snode.clock import NetworkClock
from bridge.session.snode.errors import SnodeError
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, SubResult, parse_retrieve
from bridge.session.snode.rpc import BATCH_MAX

log = logging.getLogger("bridge.session.groups.poller")

__all__ = ["GROUPS_PER_BATCH", "GroupPoller", "GroupSnode", "RequestSigner"]

#: Whole groups that fit in one batch (20 sub-requests, 5 namespaces each).
GROUPS_PER_BATCH = BATCH_MAX // len(POLL_NAMESPACES)
#: ``max_size`` per namespace as desktop asks (fractions of the node's limit, §6.2).
_MAX_SIZE = {NS_MESSAGES: -2}
_MAX_SIZE_OTHER = -8

#: Builds signed params: ``(method, namespace, timestamp, **fields)`` — e.g. a partial of
#: :func:`~bridge.session.groups.subaccount.member_request_params` (member) or
#: :func:`~bridge.session.groups.subaccount.admin_request_params` (admin).
RequestSigner = Callable[..., dict[str, Any]]


class GroupSnode(Protocol):
    """What the poller needs from :class:`~bridge.session.snode.rpc.SnodeClient`."""

    clock: NetworkClock

    async def get_swarm(self, account: str, *, refresh: bool = False) -> list[ServiceNode]:
        """The swarm of an account."""
        ...

    async def batch(
        self,
        account: str,
        requests: Sequence[Call],
        *,
        sequence: bool = False,
        prefer: ServiceNode | None = None,
    ) -> tuple[ServiceNode, list[SubResult]]:
        """One ``batch`` to ``account``'s swarm."""
        ...


@dataclass
class _Group:
    state: GroupState
    sign: RequestSigner

    @property
    def id(self) -> str:
        return self.state.group_id.value


class GroupPoller:
    """Polls every added group; see the module docstring."""

    def __init__(self, snode: GroupSnode, store: GroupStore) -> None:
        self._snode = snode
        self._store = store
        self._groups: dict[str, _Group] = {}
        self._queued: list[GroupEvent] = []
        self._prefer: dict[frozenset[str], ServiceNode] = {}
        self._done: dict[str, set[str]] = {}
        self._in_flight: dict[tuple[str, str], MessageEvent] = {}
        self._pending: dict[tuple[str, str, int], deque[str]] = {}
        #: True when a node said it has more than it returned: poll again without waiting.
        self.more = False

    @property
    def group_ids(self) -> list[str]:
        """Ids of the groups being polled."""
        return list(self._groups)

    def state(self, group_id: str) -> GroupState | None:
        """The live state of a polled group."""
        group = self._groups.get(group_id)
        return group.state if group else None

    async def add(self, state: GroupState, sign: RequestSigner) -> None:
        """Start polling ``state``'s group, first rebuilding it from the stored bytes.

        The state events of that rebuild (Info, Members) come with the next poll: the
        consumer may have missed them before a restart; they are idempotent.
        """
        raws = await self._store.raw_messages(state.group_id.value)
        batch: dict[int, list[RawGroupMessage]] = {}
        for raw in raws:
            batch.setdefault(raw.namespace, []).append(raw)
        if batch:
            applied = state.apply(batch, self._snode.clock.now_ms(), replay=True)
            self._queued.extend(applied.events)
        self._groups[state.group_id.value] = _Group(state, sign)

    def remove(self, group_id: str) -> None:
        """Stop polling a group (its cursors and stored bytes stay in the store)."""
        self._groups.pop(group_id, None)
        for cursor in [k for k in self._pending if k[1] == group_id]:
            del self._pending[cursor]
        for flying in [k for k in self._in_flight if k[0] == group_id]:
            del self._in_flight[flying]

    async def poll_once(self) -> list[GroupEvent]:
        """One cycle: the batches of every swarm (concurrently); returns the new events."""
        events, self._queued = self._queued, []
        by_swarm: dict[frozenset[str], list[_Group]] = {}
        for group in list(self._groups.values()):
            try:
                swarm = await self._snode.get_swarm(group.id)
            except SnodeError as e:
                log.warning("no swarm for group %s…: %s", group.id[:10], e)
                continue
            by_swarm.setdefault(frozenset(n.pubkey_ed25519 for n in swarm), []).append(group)
        self.more = False
        jobs = []
        for key, groups in by_swarm.items():
            for i in range(0, len(groups), GROUPS_PER_BATCH):
                jobs.append(self._poll_batch(key, groups[i : i + GROUPS_PER_BATCH]))
        for found in await asyncio.gather(*jobs):
            events.extend(found)
        return events

    async def ack(self, event: MessageEvent) -> None:
        """The consumer handled ``event``: remember its hash and advance cursors past it."""
        group = event.group.value
        await self._store.mark_seen(group, event.hash, event.expiry)
        self._in_flight.pop((group, event.hash), None)
        self._done.setdefault(group, set()).add(event.hash)
        await self._advance()

    # --- internals --------------------------------------------------------------------------

    async def _poll_batch(self, swarm: frozenset[str], groups: list[_Group]) -> list[GroupEvent]:
        cursors: dict[tuple[str, str, int], str] = {}
        for pubkey in swarm:
            for group in groups:
                for ns in POLL_NAMESPACES:
                    lh = await self._store.get_last_hash(pubkey, group.id, ns)
                    if lh:
                        cursors[(pubkey, group.id, ns)] = lh
        requests = [_retrieve(g, ns, cursors) for g in groups for ns in POLL_NAMESPACES]
        try:
            node, subs = await self._snode.batch(
                groups[0].id, requests, prefer=self._prefer.get(swarm)
            )
        except SnodeError as e:
            log.warning("group poll of %d groups failed: %s", len(groups), e)
            return []
        self._prefer[swarm] = node
        events: list[GroupEvent] = []
        width = len(POLL_NAMESPACES)
        for i, group in enumerate(groups):
            if group.id in self._groups:
                found = await self._process(node, group, subs[i * width : (i + 1) * width])
                events.extend(found)
        await self._advance()
        return events

    async def _process(
        self, node: ServiceNode, group: _Group, subs: Sequence[SubResult]
    ) -> list[GroupEvent]:
        state, gid = group.state, group.id
        done = self._done.setdefault(gid, set())
        batch: dict[int, list[RawGroupMessage]] = {}
        refused = False
        for ns, sub in zip(POLL_NAMESPACES, subs, strict=False):
            if not sub.ok:
                refused = refused or (sub.code == 401 and ns != NS_REVOKED)
                if sub.code != 401:
                    log.warning("group %s… ns %d: status %d", gid[:10], ns, sub.code)
                continue
            try:
                result = parse_retrieve(node, ns, sub.body)
            except SnodeError as e:
                log.warning("group %s… ns %d: %s", gid[:10], ns, e)
                continue
            self.more = self.more or result.more
            hashes = [m.hash for m in result.messages]
            done.update(await self._store.seen(gid, hashes))
            self._pending[(node.pubkey_ed25519, gid, ns)] = deque(hashes)
            for m in result.messages:
                if m.hash not in done and (gid, m.hash) not in self._in_flight:
                    raw = RawGroupMessage(ns, m.hash, m.timestamp, m.expiry, m.data)
                    batch.setdefault(ns, []).append(raw)
        applied = state.apply(batch, self._snode.clock.now_ms())
        events: list[GroupEvent] = list(applied.events)
        for ns, raws in batch.items():
            for raw in raws:
                event = applied.messages.get(raw.hash) if ns == NS_MESSAGES else None
                if event is not None:
                    self._in_flight[(gid, raw.hash)] = event
                    events.append(event)
                    continue
                if ns != NS_MESSAGES and ns != NS_REVOKED:
                    await self._store.add_raw(gid, raw)  # received bytes, for restarts
                await self._store.mark_seen(gid, raw.hash, raw.expiry)
                done.add(raw.hash)
        if refused and state.removed is None:
            state.removed = RemovalReason.REVOKED
            events.append(GroupRemovedEvent(state.group_id, state.removed))
        if not state.active:
            self.remove(gid)
        return events

    async def _advance(self) -> None:
        for (node, gid, ns), queue in self._pending.items():
            done = self._done.get(gid, set())
            last = None
            while queue and queue[0] in done:
                last = queue.popleft()
            if last is not None:
                await self._store.set_last_hash(node, gid, ns, last)


def _retrieve(group: _Group, ns: int, cursors: dict[tuple[str, str, int], str]) -> Call:
    def params(node: ServiceNode, now: int) -> dict[str, Any]:
        last_hash = cursors.get((node.pubkey_ed25519, group.id, ns), "")
        max_size = _MAX_SIZE.get(ns, _MAX_SIZE_OTHER)
        return group.sign("retrieve", ns, now, last_hash=last_hash, max_size=max_size)

    return Call("retrieve", params)
