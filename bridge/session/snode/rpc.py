"""The storage-server client: direct HTTPS JSON-RPC with swarm routing and retries (§6).

Retry policy (§6.14):

* 421 — the body is the account's current swarm: remember it and retry there (bounded);
* 406/425 — clock skew: resync the network-time offset from the node (``info`` → ``t``)
  and retry once, re-signed;
* timeouts, connection failures, 5xx — next node of the swarm, with bounded exponential
  backoff and jitter;
* any other status raises its typed error at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.backoff import Backoff
from bridge.session.errors import InvalidInput
from bridge.session.sent_clock import SentClock
from bridge.session.snode import auth, calls
from bridge.session.snode.clock import NetworkClock
from bridge.session.snode.errors import (
    ClockSkew,
    InvalidResponse,
    NodeUnreachable,
    SnodeError,
    SwarmUnavailable,
    WrongSwarm,
)
from bridge.session.snode.nodes import NodePool, ServiceNode, parse_swarm
from bridge.session.snode.results import (
    Call,
    RetrieveResult,
    StoreResult,
    SubResult,
    error_for,
    parse_retrieve,
    parse_store,
    parse_sub_results,
)
from bridge.session.snode.transport import RpcReply, SnodeTransport

log = logging.getLogger("bridge.session.snode.rpc")

#: Most subrequests a ``batch``/``sequence`` may carry (§6.10).
BATCH_MAX = 20

BodyFn = Callable[[ServiceNode, int], dict[str, Any]]
Inspect = Callable[[RpcReply], tuple[int, Any]]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop."""

    max_attempts: int = 6
    max_swarm_updates: int = 3
    base_delay: float = 0.2
    max_delay: float = 3.0

    @property
    def backoff(self) -> Backoff:
        """The wait before trying the next node: doubling from ``base_delay`` up to
        ``max_delay``, then drawn between half and all of it."""
        return Backoff(self.base_delay, self.max_delay, jitter=(0.5, 1.0))


def _inspect_single(reply: RpcReply) -> tuple[int, Any]:
    return reply.status, reply.body


def _inspect_batch(reply: RpcReply, *, lift_421: bool = True) -> tuple[int, Any]:
    """Lift a subresult's 421, 406/425 or 5xx to the whole batch (one account per batch).

    ``lift_421=False`` (a batch over several accounts sharing a swarm): a subresult's 421
    concerns its own account only and stays in the results for the caller (§6.14).
    """
    if reply.status != 200:
        return reply.status, reply.body
    subs = parse_sub_results(reply.body)
    for wanted in ((421,), (406, 425)) if lift_421 else ((406, 425),):
        for sub in subs:
            if sub.code in wanted:
                return sub.code, sub.body
    for sub in subs:
        if sub.code >= 500:
            return sub.code, sub.body
    return 200, reply.body


class SnodeClient:
    """Talks to the swarms of accounts; see the module docstring for the retry rules."""

    def __init__(
        self,
        pool: NodePool,
        transport: SnodeTransport,
        *,
        clock: NetworkClock | None = None,
        sent_clock: SentClock | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.pool = pool
        self.clock = clock or NetworkClock()
        # One client serves every identity of the bridge, so its sent clock is the
        # process-wide one (Android's duplicate-timestamp rule, §2.11; .sent_clock).
        self.sent_clock = sent_clock or SentClock(self.clock.now_ms)
        self._transport = transport
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep

    # --- swarms ---------------------------------------------------------------------------

    async def get_swarm(self, account: str, *, refresh: bool = False) -> list[ServiceNode]:
        """The nodes of ``account``'s swarm (cached; ``refresh`` asks the network again)."""
        cached = None if refresh else self.pool.cached_swarm(account)
        if cached:
            return cached
        last: Exception | None = None
        for node in await self.pool.random_nodes(self._policy.max_attempts):
            body = {"jsonrpc": "2.0", "method": "get_swarm", "params": {"pubkey": account}}
            try:
                reply = await self._post(node, body)
            except NodeUnreachable as e:
                last = e
                continue
            if reply.status == 200:
                swarm = parse_swarm(reply.body)
                self.pool.set_swarm(account, swarm)
                return list(swarm)
            last = error_for(reply.status, reply.body)
        raise SwarmUnavailable("get_swarm failed on every node tried") from last

    # --- generic calls --------------------------------------------------------------------

    async def call(
        self, account: str, call: Call, *, prefer: ServiceNode | None = None
    ) -> tuple[ServiceNode, Any]:
        """Send one call to ``account``'s swarm; returns the answering node and the body."""

        def body(node: ServiceNode, now: int) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "method": call.method, "params": call.params(node, now)}

        return await self._send(account, body, _inspect_single, prefer)

    async def batch(
        self,
        account: str,
        requests: Sequence[Call],
        *,
        sequence: bool = False,
        prefer: ServiceNode | None = None,
        mixed_accounts: bool = False,
    ) -> tuple[ServiceNode, list[SubResult]]:
        """Many calls in one ``batch`` (or ``sequence``: stops at the first failure, §6.10).

        Routing follows ``account``: every call should target that account's swarm (several
        namespaces, or accounts known to share it); a 421 in any subresult moves the batch.
        With ``mixed_accounts`` the calls are for several accounts believed to share the
        swarm: a subresult's 421 is returned as is (only its account moved, the others' results
        are good); feed its body to :meth:`update_swarm`.
        """
        if not 1 <= len(requests) <= BATCH_MAX:
            raise InvalidInput(f"a batch holds 1 to {BATCH_MAX} requests")
        method = "sequence" if sequence else "batch"

        def body(node: ServiceNode, now: int) -> dict[str, Any]:
            subs = [{"method": c.method, "params": c.params(node, now)} for c in requests]
            return {"jsonrpc": "2.0", "method": method, "params": {"requests": subs}}

        def inspect(reply: RpcReply) -> tuple[int, Any]:
            return _inspect_batch(reply, lift_421=not mixed_accounts)

        node, out = await self._send(account, body, inspect, prefer)
        return node, parse_sub_results(out)

    def update_swarm(self, account: str, body: object) -> list[ServiceNode]:
        """Remember ``account``'s swarm from a 421 body (§6.2); raises ``InvalidResponse``."""
        swarm = parse_swarm(body)
        self.pool.set_swarm(account, swarm)
        return swarm

    async def info(self, node: ServiceNode) -> dict[str, Any]:
        """``info`` of one node (version, timestamp); also resyncs the network time."""
        reply = await self._post(node, {"jsonrpc": "2.0", "method": "info", "params": {}})
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise error_for(reply.status, reply.body)
        return reply.body

    # --- methods ----------------------------------------------------------------------------

    async def store(
        self,
        account: str,
        data: bytes,
        *,
        namespace: int = 0,
        ttl_ms: int = calls.DEFAULT_TTL_MS,
        signer: auth.Signer | None = None,
        timestamp: int | None = None,
    ) -> StoreResult:
        """Store ``data`` for ``account`` (signed by ``signer`` where the namespace needs it)."""
        call = calls.store_call(
            account, data, namespace=namespace, ttl_ms=ttl_ms, signer=signer, timestamp=timestamp
        )
        node, body = await self.call(account, call)
        return parse_store(node, auth.message_hash(account, namespace, data), body)

    async def retrieve(
        self,
        signer: auth.Signer,
        *,
        namespace: int = 0,
        last_hash: str | None = None,
        prefer: ServiceNode | None = None,
        max_count: int | None = None,
    ) -> RetrieveResult:
        """Messages of ``signer``'s account after ``last_hash`` on the node that answers."""
        call = calls.retrieve_call(
            signer, namespace=namespace, last_hash=last_hash, max_count=max_count
        )
        node, body = await self.call(signer.session_id, call, prefer=prefer)
        return parse_retrieve(node, namespace, body)

    async def delete(
        self, signer: auth.Signer, hashes: Sequence[str], *, required: bool = False
    ) -> dict[str, Any]:
        """Delete own messages by hash; returns the per-node ``swarm`` results."""
        _, body = await self.call(
            signer.session_id, calls.delete_call(signer, hashes, required=required)
        )
        return _swarm_of(body)

    async def delete_all(
        self, signer: auth.Signer, namespace: auth.NamespaceVar = 0
    ) -> dict[str, Any]:
        """Delete a whole namespace (or ``"all"``) of the own account."""
        _, body = await self.call(signer.session_id, calls.delete_all_call(signer, namespace))
        return _swarm_of(body)

    async def expire(
        self, signer: auth.Signer, hashes: Sequence[str], expiry_ms: int, *, mode: str = ""
    ) -> dict[str, Any]:
        """Change the expiry of own messages (``mode``: ``""``/``"shorten"``/``"extend"``)."""
        call = calls.expire_call(signer, hashes, expiry_ms, mode=mode)
        _, body = await self.call(signer.session_id, call)
        return _swarm_of(body)

    async def get_expiries(
        self, signer: auth.Signer, hashes: Sequence[str], *, prefer: ServiceNode | None = None
    ) -> dict[str, int]:
        """Expiries of the given hashes that the answering node knows."""
        call = calls.get_expiries_call(signer, hashes)
        _, body = await self.call(signer.session_id, call, prefer=prefer)
        exp = body.get("expiries") if isinstance(body, dict) else None
        if not isinstance(exp, dict):
            raise InvalidResponse("get_expiries reply without 'expiries'")
        return {k: v for k, v in exp.items() if isinstance(v, int)}

    # --- the retry loop -----------------------------------------------------------------------

    async def _send(
        self, account: str, body: BodyFn, inspect: Inspect, prefer: ServiceNode | None
    ) -> tuple[ServiceNode, Any]:
        policy = self._policy
        candidates = self._order(await self.get_swarm(account), prefer)
        swarm_updates = failures = 0
        skew_retried = False
        last: Exception | None = None
        index = 0
        for _ in range(policy.max_attempts):
            node = candidates[index % len(candidates)]
            try:
                reply = await self._post(node, body(node, self.clock.now_ms()))
            except NodeUnreachable as e:
                last, index, failures = e, index + 1, failures + 1
                self.pool.note_failure(node)
                await self._backoff(failures)
                continue
            status, out = inspect(reply)
            if 200 <= status < 300:
                self.pool.note_success(node)
                return node, out
            if status == 421:
                swarm_updates += 1
                if swarm_updates > policy.max_swarm_updates:
                    raise WrongSwarm("swarm kept changing (421)", status=421)
                swarm = parse_swarm(out)
                log.info(
                    "421 from %s:%d: account moved to swarm %s",
                    node.ip,
                    node.port,
                    out.get("swarm") if isinstance(out, dict) else "?",
                )
                self.pool.set_swarm(account, swarm)
                candidates, index = self._order(swarm, None), 0
                continue
            if status in (406, 425):
                if skew_retried:
                    raise ClockSkew(f"{status} after clock resync", status=status)
                skew_retried = True
                await self._resync(node)
                continue
            if status >= 500:
                last, index, failures = error_for(status, out), index + 1, failures + 1
                self.pool.note_failure(node)
                await self._backoff(failures)
                continue
            raise error_for(status, out)
        raise SwarmUnavailable(
            f"no node of the swarm answered in {policy.max_attempts} attempts"
        ) from last

    def _order(
        self, swarm: Sequence[ServiceNode], prefer: ServiceNode | None
    ) -> list[ServiceNode]:
        nodes = self.pool.ordered(swarm)
        if prefer is not None and prefer in nodes:
            nodes.remove(prefer)
            nodes.insert(0, prefer)
        return nodes

    async def _post(self, node: ServiceNode, body: dict[str, Any]) -> RpcReply:
        reply = await self._transport.post(node.url, body)
        t = reply.network_time
        if t is not None:
            self.clock.observe(t)
        if reply.status != 200:
            log.debug(
                "%s:%d answered %d to %s", node.ip, node.port, reply.status, body.get("method")
            )
        return reply

    async def _resync(self, node: ServiceNode) -> None:
        """After 406/425: the error body has no ``t``, so ask the node's ``info``."""
        before = self.clock.offset_ms
        try:
            await self.info(node)
        except SnodeError as e:
            raise ClockSkew(f"clock resync with {node.ip}:{node.port} failed") from e
        log.warning("clock skew: network offset %d ms → %d ms", before, self.clock.offset_ms)

    async def _backoff(self, failures: int) -> None:
        await self._sleep(self._policy.backoff.delay(failures, self._rng))


def _swarm_of(body: object) -> dict[str, Any]:
    swarm = body.get("swarm") if isinstance(body, dict) else None
    if not isinstance(swarm, dict):
        raise InvalidResponse("reply without per-node 'swarm' results")
    return swarm
