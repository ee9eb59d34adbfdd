"""HTTP requests, bytes and latency of one community poll for 1, 10 and 100 joined rooms.

Run: ``.venv/bin/python -m bench.bench_community_poll``. Prints; never asserts. Requests per
poll should stay 1 (one ``/batch``, §5.9) whatever the number of rooms.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.urls import CommunityServerRef
from tests.sessionnet.community import CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import RequestCounter, serve

ROOM_COUNTS = (1, 10, 100)
CYCLES = 20


async def measure(rooms: int) -> None:
    """Fill ``rooms`` rooms with one post each, then time idle and busy polls."""
    server = CommunityServer([RoomSpec(f"r{i}", f"Room {i}") for i in range(rooms)])
    counter = RequestCounter()
    runner, url = await serve("127.0.0.1", server.make_app([counter.middleware]))
    try:
        async with aiohttp.ClientSession() as http:
            ref = CommunityServerRef(url, server.pubkey)
            poster = CommunityClient(http, Identity.generate(), ref)
            reader = CommunityClient(http, Identity.generate(), ref)
            for i in range(rooms):
                await poster.post(f"r{i}", VisibleMessage(body=f"hello {i}"))
                await reader.join(f"r{i}")
            counter.reset()
            busy = await reader.poll()
            await reader.commit(busy)
            busy_stats = (counter.requests, counter.bytes_in, counter.bytes_out)
            counter.reset()
            latencies = []
            for _ in range(CYCLES):
                start = time.perf_counter()
                await reader.poll()
                latencies.append((time.perf_counter() - start) * 1000)
            per_poll = counter.requests / CYCLES
            print(
                f"{rooms:>4} rooms | first poll (1 new msg/room): {busy_stats[0]} req, "
                f"{busy_stats[1]:>6} B up, {busy_stats[2]:>7} B down | idle poll: "
                f"{per_poll:.1f} req, {counter.bytes_in // CYCLES:>6} B up, "
                f"{counter.bytes_out // CYCLES:>6} B down, median "
                f"{statistics.median(latencies):6.2f} ms, max {max(latencies):6.2f} ms"
            )
    finally:
        await runner.cleanup()


async def main() -> None:
    """Run every room count."""
    print(f"community poll over loopback HTTP, {CYCLES} idle polls per row")
    for rooms in ROOM_COUNTS:
        await measure(rooms)


if __name__ == "__main__":
    asyncio.run(main())
