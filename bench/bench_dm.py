"""End-to-end direct-message throughput and latency between two SessionClients (prints only).

Alice sends N text messages to Bob through the devnet with ``--concurrency`` senders; Bob's
client polls its swarm and delivers events. Latency is send start -> Bob's subscriber; the
floor is N bare ``store`` + ``retrieve`` pairs of the same payload size through the same
devnet, which is what a DM costs at least (one store, one poll). Never asserts.

Run: ``.venv/bin/python -m bench.bench_dm [--n 200] [--concurrency 8] [--poll-interval 0.02]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time

from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.onetoone import MessageKeys, encode_direct_message
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.helpers import new_signer


def report(name: str, n: int, elapsed: float, latencies: list[float]) -> float:
    """Print one line; return the rate (messages per second)."""
    q = statistics.quantiles(latencies, n=20)
    rate = n / elapsed
    print(
        f"{name:22s} n={n:4d}  {rate:8.1f} msg/s  "
        f"p50={statistics.median(latencies) * 1000:7.2f} ms  p95={q[18] * 1000:7.2f} ms"
    )
    return rate


async def bench_dm(world: DmWorld, n: int, concurrency: int, poll_interval: float) -> float:
    """N DMs alice -> bob; returns msg/s."""
    started: dict[int, float] = {}
    arrived: dict[int, float] = {}
    all_in = asyncio.Event()

    async def on_event(event: ClientEvent) -> None:
        if isinstance(event, DirectMessageEvent) and event.timestamp not in arrived:
            arrived[event.timestamp] = time.perf_counter()
            if len(arrived) == n:
                all_in.set()

    alice = await world.client(start=False)
    bob = await world.client(inbox=on_event, poll_interval=poll_interval)
    counter = iter(range(n))

    async def sender() -> None:
        for i in counter:
            t0 = time.perf_counter()
            sent = await alice.send_text(bob.session_id, f"benchmark message {i:05d}")
            started[sent.timestamp] = t0

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    await asyncio.wait_for(all_in.wait(), timeout=120)
    elapsed = time.perf_counter() - start
    latencies = [arrived[ts] - t0 for ts, t0 in started.items()]
    return report("SessionClient DM e2e", n, elapsed, latencies)


async def bench_floor(world: DmWorld, n: int, concurrency: int) -> float:
    """N bare store + retrieve pairs of a DM-sized payload; returns pairs/s."""
    signer = new_signer()
    data = base64.b64decode(
        encode_direct_message(
            MessageKeys.from_seed(Identity.generate().ed25519_seed),
            signer.session_id,
            VisibleMessage(body="benchmark message 00000"),
            int(time.time() * 1000),
        )
    )
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        last: str | None = None
        for i in counter:
            t0 = time.perf_counter()
            stored = await world.snode.store(signer.session_id, data + bytes([i % 256]))
            await world.snode.retrieve(signer, last_hash=last)
            last = stored.hash
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return report("bare store+retrieve", n, time.perf_counter() - start, latencies)


async def main(n: int, concurrency: int, poll_interval: float) -> None:
    """Run both measurements on one devnet and print the ratio."""
    async with dm_world() as world:
        print(f"devnet: 6 nodes, swarms of 3; poll interval {poll_interval * 1000:.0f} ms")
        floor = await bench_floor(world, n, concurrency)
        dm = await bench_dm(world, n, concurrency, poll_interval)
        print(f"ratio DM / floor: {dm / floor:.2f}")
        print(
            "(the floor pays one retrieve per store; the client's poller fetches many messages"
            " per retrieve, so the ratio can exceed 1. Devnet and clients share one event loop:"
            " these are CPU-bound numbers.)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=0.02)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.poll_interval))
