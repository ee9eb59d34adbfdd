"""Raw ``store``/``retrieve`` rate through the devnet: ops/s and p50/p95 latency (prints only).

Run: ``.venv/bin/python -m bench.bench_snode [--n 300] [--concurrency 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from tests.sessionnet.helpers import devnet_client, new_signer, running_devnet


async def measure(
    name: str, n: int, concurrency: int, op: Callable[[int], Awaitable[object]]
) -> None:
    """Run ``op`` ``n`` times with ``concurrency`` workers and print the numbers."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=20)
    print(
        f"{name:9s} n={n:5d} conc={concurrency:3d}  {n / elapsed:8.1f} ops/s  "
        f"p50={statistics.median(latencies) * 1000:6.2f} ms  p95={q[18] * 1000:6.2f} ms"
    )


async def main(n: int, concurrency: int) -> None:
    """Start a devnet, then time stores and retrieves through the real client."""
    async with running_devnet() as net, devnet_client(net, timeout=10.0) as client:
        bob = new_signer()
        await client.get_swarm(bob.session_id)
        payload = bytes(200)

        async def store(i: int) -> object:
            return await client.store(bob.session_id, payload + i.to_bytes(4, "big"))

        async def retrieve(i: int) -> object:
            return await client.retrieve(bob, max_count=10)

        await measure("store", n, concurrency, store)
        await measure("retrieve", n, concurrency, retrieve)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=1)
    args = ap.parse_args()
    asyncio.run(main(args.n, args.concurrency))
