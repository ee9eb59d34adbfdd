"""HTTP requests per inbox poll cycle for 1, 100 and 1,000 logins on the devnet: each account
polling alone (the old behaviour, one ``batch`` per login per cycle) against shared polling by
swarm (``bridge/session/swarm_polling.py``). Prints; never asserts.

Run: ``.venv/bin/python -m bench.bench_swarm_polling [--nodes 30] [--swarm-size 3]
[--live-cycles 3]``

* Every login has one message waiting; the first cycle of each mode must hand out each message
  exactly once (checked and printed as "delivered").
* A cycle is every account polling once at the same moment (their loops wake on the same tick).
  Each account sends 2 subrequests (gap check + namespace 0), so a node's 20-subrequest limit
  (docs/session-protocol.md §6.10) packs 10 accounts per ``batch``: expected
  ``sum over swarms of ceil(accounts_on_swarm / 10)`` requests per shared cycle.
* "live": the same number of :class:`~bridge.session.client.SessionClient` s with the bridge's
  wiring (one shared :class:`~bridge.session.swarm_polling.SwarmPolling`, 1 s interval), left
  running: requests per cycle = requests / (polls / logins), after every login polled once.
  Their loops wait for the same tick, so they share batches as long as a cycle is shorter than
  the interval; where it is longer (1,000 logins with the devnet in this process on a busy
  machine), loops finish on different ticks and batches carry fewer accounts.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent
from bridge.session.keys import Identity
from bridge.session.poller import MemoryPollState, PolledMessage, Poller, PollEvent
from bridge.session.snode.rpc import SnodeClient
from bridge.session.swarm_polling import SwarmPolling
from tests.sessionnet.helpers import devnet_client, new_signer, running_devnet
from tests.sessionnet.net import Devnet

LOGINS = (1, 100, 1000)
CYCLES = 3
PER_BATCH = 10  # 20 subrequests / 2 per account
LIVE_INTERVAL = 1.0


def requests(net: Devnet, method: str = "batch") -> int:
    return sum(n.http_requests[method] for n in net.nodes)


async def bounded(jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int = 50) -> list[Any]:
    """Run ``jobs`` with at most ``limit`` at a time."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def run_cycle(
    net: Devnet,
    poll: Callable[[Poller[bytes]], Awaitable[list[PollEvent[bytes]]]],
    polled: list[Poller[bytes]],
) -> tuple[int, float, int]:
    """One cycle: (batch requests, wall ms, messages handed out); acks what arrives."""
    before = requests(net)
    start = time.perf_counter()
    results = await asyncio.gather(*(poll(p) for p in polled))
    ms = (time.perf_counter() - start) * 1000
    got = 0
    for poller, events in zip(polled, results, strict=True):
        for event in events:
            if isinstance(event, PolledMessage):
                got += 1
                await poller.ack(event)
    return requests(net) - before, ms, got


async def bench_mode(
    net: Devnet,
    snode: SnodeClient,
    count: int,
    poll: Callable[[Poller[bytes]], Awaitable[list[PollEvent[bytes]]]],
) -> tuple[float, float, int, list[str]]:
    """Fresh accounts with one message each: requests and ms per cycle, messages delivered,
    and the accounts."""
    signers = [new_signer() for _ in range(count)]
    await bounded([functools.partial(snode.store, s.session_id, b"waiting") for s in signers])
    polled = [Poller(snode, s, MemoryPollState(), bytes) for s in signers]
    _, _, delivered = await run_cycle(net, poll, polled)
    total_req, total_ms = 0, 0.0
    for _ in range(CYCLES):
        req, ms, got = await run_cycle(net, poll, polled)
        total_req, total_ms, delivered = total_req + req, total_ms + ms, delivered + got
    return total_req / CYCLES, total_ms / CYCLES, delivered, [s.session_id for s in signers]


async def bench_live(net: Devnet, snode: SnodeClient, count: int, cycles: int) -> float:
    """Requests per cycle (every login polled once) of ``count`` running clients sharing one
    polling, over ``cycles`` cycles after one to warm up."""
    polling = SwarmPolling(snode)

    async def ignore(_: ClientEvent) -> None:
        return None

    async def polled(n: int) -> None:
        while polling.polls < n:
            await asyncio.sleep(0.05)

    clients = []
    for _ in range(count):
        client = SessionClient(
            Identity.generate(),
            snode,
            MemoryPollState(),
            polling=polling,
            poll_interval=LIVE_INTERVAL,
        )
        client.subscribe(ignore)
        clients.append(client)
    try:
        for client in clients:
            await client.start()
        await polled(count)
        before, polls = requests(net), polling.polls
        await polled(polls + cycles * count)
        return (requests(net) - before) / ((polling.polls - polls) / count)
    finally:
        for client in clients:
            await client.stop(timeout=2)
        await polling.close()


def expected_shared(net: Devnet, accounts: Sequence[str]) -> int:
    per_swarm = Counter(net.swarm_for(a).swarm_id for a in accounts)
    return sum(math.ceil(n / PER_BATCH) for n in per_swarm.values())


async def main_async(nodes: int, swarm_size: int, live_cycles: int) -> None:
    async with (
        running_devnet(node_count=nodes, swarm_size=swarm_size) as net,
        devnet_client(net, timeout=30) as snode,
    ):
        print(
            f"devnet: {len(net.nodes)} storage nodes in {len(net.swarms)} swarms of "
            f"{swarm_size}; {CYCLES} measured cycles per row, after one that delivers"
        )
        print(
            f"{'logins':>6}  {'alone req/cycle':>15}  {'shared req/cycle':>16}  "
            f"{'expected':>8}  {'ratio':>6}  {'alone ms':>8}  {'shared ms':>9}  "
            f"{'live req/cycle':>14}  delivered"
        )
        for count in LOGINS:
            alone = await bench_mode(net, snode, count, lambda p: p.poll_once())
            polling = SwarmPolling(snode)
            both = await bench_mode(net, snode, count, polling.poll)
            await polling.close()
            expected = expected_shared(net, both[3])
            live = await bench_live(net, snode, count, live_cycles) if live_cycles else None
            shown = f"{live:14.1f}" if live is not None else f"{'-':>14}"
            print(
                f"{count:6d}  {alone[0]:15.1f}  {both[0]:16.1f}  {expected:8d}  "
                f"{alone[0] / both[0]:5.1f}x  {alone[1]:8.1f}  {both[1]:9.1f}  "
                f"{shown}  {alone[2]}/{count} alone, {both[2]}/{count} shared"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=30, help="storage nodes in the devnet")
    parser.add_argument("--swarm-size", type=int, default=3, help="nodes per swarm")
    parser.add_argument(
        "--live-cycles", type=int, default=3, help="cycles of the live run per row (0: skip)"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.nodes, args.swarm_size, args.live_cycles))


if __name__ == "__main__":
    main()
