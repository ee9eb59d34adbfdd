"""Polls the swarms of many groups v2 at once (docs/groups-v2.md §6.2, §6.3).

* Groups whose ids map to the same swarm are polled together: one ``batch`` per swarm per
  cycle, each group contributing one ``retrieve`` per namespace in the order -11, 11, 13, 14,
  12 (keys last, §6.2). A storage node takes at most 20 sub-requests per batch
  (session-protocol §6.10), so a swarm with more than 4 due groups needs
  ``ceil(groups / 4)`` batches per cycle; a group's five retrieves always share one batch,
  which the processing order relies on. Which groups are due, the hourly ``expire`` that
  keeps their keys/config messages alive, and the packing: :mod:`.poll_plan`.
* A 421 for one group of a shared batch (that group's account moved swarm, session-protocol
  §6.14) re-routes that group alone from the 421 body; the other groups' results are used.
* Each group's new messages of one batch are processed in §6.3 order by
  :meth:`~bridge.session.groups.group_state.GroupState.apply`: keys, Info, Members, kicked
  notes, messages.
* ``last_hash`` is kept per (node, group, namespace) in a
  :class:`~bridge.session.groups.store.GroupStore`; a cursor moves only past messages that
  are done: keys/config/kicked messages once stored and applied, ns 11 messages once the
  consumer called :meth:`GroupPoller.ack`. A crash re-delivers; seen hashes de-duplicate.
* A swarm's batches go to the node that answered last (cursors exist only where we read).
  After a restart that node is not in memory: the first batch of a swarm goes to the node
  holding the most of the batch's groups' cursors, the one whose cursors moved last on a tie
  (:meth:`~bridge.session.groups.store.GroupStore.cursor_nodes`), so that a restart does not
  re-read everything the swarm holds from a node we never read (§6.2).
* A 401 on 11-14 means our subaccount was revoked (§6.2, §7.10): the group is reported
  removed and no longer polled (-11 is still read in that batch, and a kicked note wins).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from bridge.session.groups.poll_plan import (
    DESKTOP_SCHEDULE,
    GROUPS_PER_BATCH,
    Batch,
    PollSchedule,
    RequestSigner,
    expire_call,
    keepalive_hashes,
    pack,
)
from bridge.session.groups.store import GroupStore, RawGroupMessage
from bridge.session.snode.errors import SnodeError
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, SubResult, parse_retrieve
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.session.groups.poller")

__all__ = ["GROUPS_PER_BATCH", "GroupPoller", "RequestSigner"]

#: ``max_size`` per namespace as desktop asks (fractions of the node's limit, §6.2).
_MAX_SIZE = {NS_MESSAGES: -2}
_MAX_SIZE_OTHER = -8


@dataclass
class _Group:
    state: GroupState
    sign: RequestSigner
    may_extend: bool  # the token has WRITE (or we are admin): we may extend expiries (§5.4)
    active_ms: int  # last activity: added, a new ns 11 message, our own post
    polled_ms: int | None = None
    extended_ms: int | None = None  # last *confirmed* expiry extension
    hurry: bool = False  # poll next cycle whatever the schedule (more to fetch, moved)

    @property
    def id(self) -> str:
        return self.state.group_id.value


class GroupPoller:
    """Polls every added group; see the module docstring.

    ``schedule`` decides how often quiet groups are polled and how often expiries are
    extended (:mod:`.poll_plan`); ``now_ms`` is its clock (default: network time).
    """

    def __init__(
        self,
        snode: SnodeClient,
        store: GroupStore,
        *,
        schedule: PollSchedule = DESKTOP_SCHEDULE,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self._snode = snode
        self._store = store
        self.schedule = schedule
        self._now = now_ms or snode.clock.now_ms
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

    async def add(
        self,
        state: GroupState,
        sign: RequestSigner,
        *,
        may_extend: bool = True,
        active_ms: int | None = None,
    ) -> None:
        """Start polling ``state``'s group, first rebuilding it from the stored bytes.

        The state events of that rebuild (Info, Members) come with the next poll: the
        consumer may have missed them before a restart; they are idempotent. ``may_extend``:
        our token has WRITE (or we are admin), so we keep keys/configs alive (§5.4, §6.2).
        ``active_ms``: last known activity for the schedule (default: now, a joined group).
        """
        raws = await self._store.raw_messages(state.group_id.value)
        batch: dict[int, list[RawGroupMessage]] = {}
        for raw in raws:
            batch.setdefault(raw.namespace, []).append(raw)
        if batch:
            applied = state.apply(batch, self._snode.clock.now_ms(), replay=True)
            self._queued.extend(applied.events)
        now = self._now() if active_ms is None else active_ms
        self._groups[state.group_id.value] = _Group(state, sign, may_extend, now)

    def touch(self, group_id: str) -> None:
        """Activity in a group (e.g. we posted): poll it at the active rate again."""
        group = self._groups.get(group_id)
        if group is not None:
            group.active_ms = max(group.active_ms, self._now())

    def remove(self, group_id: str) -> None:
        """Stop polling a group (its cursors and stored bytes stay in the store)."""
        self._groups.pop(group_id, None)
        for cursor in [k for k in self._pending if k[1] == group_id]:
            del self._pending[cursor]
        for flying in [k for k in self._in_flight if k[0] == group_id]:
            del self._in_flight[flying]

    async def poll_once(self) -> list[GroupEvent]:
        """One cycle: the batches of every swarm (concurrently); returns the new events.

        Only groups due by the schedule are polled; their expiry extension rides along when
        it is due (:mod:`.poll_plan`).
        """
        events, self._queued = self._queued, []
        now = self._now()
        by_swarm: dict[frozenset[str], tuple[list[_Group], list[_Group]]] = {}
        nodes: dict[frozenset[str], list[ServiceNode]] = {}
        for group in list(self._groups.values()):
            if not self._due(group, now):
                continue
            try:
                swarm = await self._snode.get_swarm(group.id)
            except SnodeError as e:
                log.warning("no swarm for group %s…: %s", group.id[:10], e)
                continue
            key = frozenset(n.pubkey_ed25519 for n in swarm)
            nodes[key] = swarm
            polls, expires = by_swarm.setdefault(key, ([], []))
            polls.append(group)
            if self._extend_due(group, now):
                expires.append(group)
        self.more = False
        jobs = []
        for key, (polls, expires) in by_swarm.items():
            for batch in pack(polls, expires):
                jobs.append(self._poll_batch(key, nodes[key], batch))
        for found in await asyncio.gather(*jobs):
            events.extend(found)
        return events

    def _due(self, group: _Group, now: int) -> bool:
        if group.hurry or group.polled_ms is None:
            return True
        return now - group.polled_ms >= self.schedule.interval_ms(group.active_ms, now)

    def _extend_due(self, group: _Group, now: int) -> bool:
        # §3.6/§6.2: keep the keys/config messages in use alive; once per extend_every_ms
        # after a confirmed extension (desktop configTtlExtensionThrottle); a clock that went
        # backwards makes it due at once rather than never.
        if not group.may_extend or not keepalive_hashes(group.state):
            return False
        last = group.extended_ms
        return last is None or not 0 <= now - last < self.schedule.extend_every_ms

    async def ack(self, event: MessageEvent) -> None:
        """The consumer handled ``event``: remember its hash and advance cursors past it."""
        group = event.group.value
        await self._store.mark_seen(group, event.hash, event.expiry)
        self._in_flight.pop((group, event.hash), None)
        self._done.setdefault(group, set()).add(event.hash)
        await self._advance()

    def release_unacked(self) -> None:
        """Hand out again, at the next poll, the messages handed out and not acknowledged.

        For a consumer whose cycle failed or stopped part-way (e.g. the database went away
        while it recorded them): without this they stayed "in flight", the next polls skipped
        them, and the cursors could never move past them. The consumer must tolerate seeing a
        message again whose handling succeeded but whose :meth:`ack` did not.
        """
        self._in_flight.clear()

    # --- internals --------------------------------------------------------------------------

    async def _poll_batch(
        self, swarm: frozenset[str], nodes: Sequence[ServiceNode], plan: Batch[_Group]
    ) -> list[GroupEvent]:
        groups = plan.polls
        cursors: dict[tuple[str, str, int], str] = {}
        for pubkey in swarm:
            for group in groups:
                for ns in POLL_NAMESPACES:
                    lh = await self._store.get_last_hash(pubkey, group.id, ns)
                    if lh:
                        cursors[(pubkey, group.id, ns)] = lh
        requests = [_retrieve(g, ns, cursors) for g in groups for ns in POLL_NAMESPACES]
        requests += [expire_call(g.sign, keepalive_hashes(g.state)) for g in plan.expires]
        account = (groups or plan.expires)[0].id
        prefer = self._prefer.get(swarm) or await self._stored_prefer(nodes, groups)
        started = self._now()
        try:
            node, subs = await self._snode.batch(
                account, requests, prefer=prefer, mixed_accounts=True
            )
        except SnodeError as e:
            log.warning("group poll of %d groups failed: %s", len(groups), e)
            return []
        self._prefer[swarm] = node
        events: list[GroupEvent] = []
        width = len(POLL_NAMESPACES)
        for i, group in enumerate(groups):
            group.polled_ms = started
            if group.id in self._groups:
                found = await self._process(node, group, subs[i * width : (i + 1) * width])
                events.extend(found)
        for group, sub in zip(plan.expires, subs[len(groups) * width :], strict=False):
            self._extended(group, sub, started)
        await self._advance()
        return events

    async def _stored_prefer(
        self, nodes: Sequence[ServiceNode], groups: Sequence[_Group]
    ) -> ServiceNode | None:
        """The node of the swarm holding the most of ``groups``' cursors, the one whose
        cursors moved last on a tie; None if we never read any of them from this swarm."""
        held: dict[str, tuple[int, int]] = {}
        for group in groups:
            for pubkey, moved in (await self._store.cursor_nodes(group.id)).items():
                count, last = held.get(pubkey, (0, 0))
                held[pubkey] = (count + 1, max(last, moved))
        ranked = [
            (held[n.pubkey_ed25519], i) for i, n in enumerate(nodes) if n.pubkey_ed25519 in held
        ]
        if not ranked:
            return None
        return nodes[max(ranked)[1]]

    def _extended(self, group: _Group, sub: SubResult, started: int) -> None:
        if sub.ok:
            group.extended_ms = started  # only a confirmed extension starts the cooldown
        elif sub.code == 421:
            self._moved(group, sub)  # retried from the new swarm next cycle
        elif sub.code == 401 and group.id in self._groups and group.state.active:
            # Retrieves worked but expire is refused: our token lacks WRITE (§5.4 2).
            log.warning("group %s…: may not extend expiries (401)", group.id[:10])
            group.may_extend = False
        else:
            log.warning("group %s…: expire failed: %d %s", group.id[:10], sub.code, sub.body)

    def _moved(self, group: _Group, sub: SubResult) -> None:
        """A 421 for this group only: take its new swarm from the body, poll it again soon."""
        try:
            swarm = self._snode.update_swarm(group.id, sub.body)
        except SnodeError as e:
            log.warning("group %s…: unusable 421 body: %s", group.id[:10], e)
        else:
            log.info("group %s… moved to a swarm of %d nodes", group.id[:10], len(swarm))
        group.hurry = True
        self.more = True

    async def _process(
        self, node: ServiceNode, group: _Group, subs: Sequence[SubResult]
    ) -> list[GroupEvent]:
        state, gid = group.state, group.id
        if any(sub.code == 421 for sub in subs):
            self._moved(group, next(sub for sub in subs if sub.code == 421))
            return []
        group.hurry = False
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
            if result.more:
                self.more = group.hurry = True
            hashes = [m.hash for m in result.messages]
            done.update(await self._store.seen(gid, hashes))
            if ns == NS_MESSAGES:  # schedule (poll_plan): a new message is activity
                fresh = [m.timestamp for m in result.messages if m.hash not in done]
                group.active_ms = max([group.active_ms, *fresh])
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
