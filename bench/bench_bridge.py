"""The bridge end to end: relay N messages each way between a Matrix room (real Synapse) and a
community room (devnet), next to the rate at which the same Synapse accepts N messages sent
directly by a Matrix client (the baseline); then the bridge's memory with 100 community
portals and 1,000 ghosts, and the HTTP requests per poll cycle for those portals.

Run with ``bash scripts/bench.sh [-n N]`` (it starts PostgreSQL and Synapse). Prints numbers,
never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import load_config
from bridge.core.community.service import community_key
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalKind
from bridge.matrix.rooms import Channel
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import CommunityAndFiles, RequestCounter


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(label: str, sent: dict[str, float], seen: dict[str, float]) -> float:
    latencies = sorted((seen[k] - sent[k]) * 1000 for k in sent)
    span = max(seen.values()) - min(sent.values())
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"{label:<28} n={len(sent):>4} {len(sent) / span:8.1f} msg/s"
        f"  p50={statistics.median(latencies):7.1f} ms  p95={p95:7.1f} ms"
    )
    return len(sent) / span


async def register(base_url: str, secret: str, name: str) -> Client:
    url = f"{base_url}/_synapse/admin/v1/register"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            nonce = (await resp.json())["nonce"]
        user, password = f"{name}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
        mac = hmac.new(
            secret.encode(), f"{nonce}\0{user}\0{password}\0notadmin".encode(), hashlib.sha1
        )
        body = {"nonce": nonce, "username": user, "password": password, "admin": False,
                "mac": mac.hexdigest()}  # fmt: skip
        async with http.post(url, json=body) as resp:
            data = await resp.json()
    return Client(mxid=data["user_id"], base_url=base_url, token=data["access_token"])


async def matrix_watcher(client: Client, room_id: RoomID, seen: dict[str, float]) -> None:
    """Record when each ghost message first shows up in ``/sync``."""
    since = (await client.sync(timeout=0))["next_batch"]
    while True:
        data = await client.sync(since=since, timeout=1000)
        since = data["next_batch"]
        room = data.get("rooms", {}).get("join", {}).get(str(room_id), {})
        for event in room.get("timeline", {}).get("events", []):
            if event.get("sender", "").startswith("@session_"):
                seen.setdefault(event["content"].get("body", ""), time.monotonic())


async def session_watcher(client: CommunityClient, room: str, seen: dict[str, float]) -> None:
    while True:
        result = await client.poll()
        for item in result.rooms[room].items:
            content = getattr(item, "content", None)
            if isinstance(content, VisibleMessage) and content.body:
                seen.setdefault(content.body.split(": ", 1)[-1], time.monotonic())
        await client.commit(result)
        await asyncio.sleep(0.01)


async def baseline(alice: Client, n: int) -> float:
    room_id = await alice.create_room()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    for i in range(n):
        key = f"b-{i}"
        sent[key] = time.monotonic()
        await alice.send_text(room_id, key)
        seen[key] = time.monotonic()
    return summary("baseline: Synapse accepts", sent, seen)


async def wait_until(check: Any, timeout: float = 120) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def relay(
    app: BridgeApp, alice: Client, extras: CommunityAndFiles, n: int
) -> tuple[float, float]:
    bot = app.config.bot_mxid
    url = f"{extras.community_url}/lobby?public_key={extras.community.pubkey_hex}"
    room_id = await alice.create_room(
        invitees=[UserID(bot)], power_level_override={"users": {bot: 50}}
    )
    await wait_until_joined(alice, room_id, bot)
    for command in (f"bridge {url}", "relay on"):
        await alice.send_text(room_id, f"!session {command}")
    async with asyncio.timeout(30):
        while (await app.repos.portals.get_by_mxid(str(room_id))) is None or not (
            await app.repos.portals.get_by_mxid(str(room_id))
        ).relay_enabled:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http:
        sam, _ = CommunityClient.from_url(http, Identity.generate(), url)
        await sam.join("lobby")
        to_matrix: dict[str, float] = {}
        watcher = asyncio.create_task(matrix_watcher(alice, room_id, to_matrix))
        sent: dict[str, float] = {}
        for i in range(n):
            sent[f"s-{i}"] = time.monotonic()
            await sam.post("lobby", VisibleMessage(body=f"s-{i}"))
        await wait_until(lambda: all(k in to_matrix for k in sent))
        watcher.cancel()
        inbound = summary("Session -> Matrix", sent, {k: to_matrix[k] for k in sent})
        reader, _ = CommunityClient.from_url(http, Identity.generate(), url)
        await reader.join("lobby")
        await reader.commit(await reader.poll())
        to_session: dict[str, float] = {}
        watcher = asyncio.create_task(session_watcher(reader, "lobby", to_session))
        sent = {}
        for i in range(n):
            sent[f"m-{i}"] = time.monotonic()
            await alice.send_text(room_id, f"m-{i}")
        await wait_until(lambda: all(k in to_session for k in sent))
        watcher.cancel()
        outbound = summary("Matrix -> Session", sent, {k: to_session[k] for k in sent})
    return inbound, outbound


async def wait_until_joined(client: Client, room_id: RoomID, mxid: str) -> None:
    async with asyncio.timeout(30):
        while UserID(mxid) not in await client.get_joined_members(room_id):
            await asyncio.sleep(0.05)


async def scale(app: BridgeApp, extras: CommunityAndFiles, counter: RequestCounter) -> None:
    before = rss_mib()
    server = extras.community
    for i in range(100):
        server.state.add_room(RoomSpec(token=f"r{i}", name=f"Room {i}"))
    rooms = PortalRooms(app.appservice.intent, app.repos.portals, app.config.bot_mxid)
    communities = app.communities
    assert communities is not None
    url = f"{extras.community_url}/r0?public_key={server.pubkey_hex}"
    ref, _, _ = await communities.lookup(url)
    for i in range(100):
        channel = Channel(id=f"r{i}", displayname=f"Room {i}")
        portal = await rooms.create(PortalKind.COMMUNITY, community_key(ref, f"r{i}"), channel)
        await communities.follow(portal)
    after_portals = rss_mib()
    for _ in range(1000):
        await app.ghosts.ensure("05" + os.urandom(32).hex())
    after_ghosts = rss_mib()
    print(f"memory: bridge process RSS {before:.0f} MiB; +100 community portals "
          f"{after_portals:.0f} MiB; +1000 ghosts {after_ghosts:.0f} MiB")  # fmt: skip
    counter.reset()
    await asyncio.sleep(3.0)
    batches = sum(1 for p in counter.paths if p == "/batch")
    per_cycle = counter.requests / max(batches, 1)
    print(f"community polling: {counter.requests} HTTP requests in {batches} poll cycles for "
          f"101 rooms on one server = {per_cycle:.2f} per cycle")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    config = load_config(Path(os.environ["SMB_TEST_CONFIG"]))
    config.database.url = f"sqlite+aiosqlite:////tmp/bench-bridge-{uuid.uuid4().hex}.db"
    config.session.community_poll_interval = 0.05
    counter = RequestCounter()
    extras = CommunityAndFiles(middlewares=[counter.middleware])
    await extras.start()
    base_url, secret = (
        os.environ["SMB_TEST_SYNAPSE_URL"],
        os.environ["SMB_TEST_SHARED_SECRET"],
    )
    alice = await register(base_url, secret, "alice")
    config.bridge.permissions = {"localhost": "user", str(alice.mxid): "admin"}
    app = BridgeApp(config)
    await app.start()
    try:
        print(f"N = {args.n} messages each way")
        base = await baseline(alice, args.n)
        inbound, outbound = await relay(app, alice, extras, args.n)
        print(f"ratio to baseline: Session -> Matrix {inbound / base:.2f}, "
              f"Matrix -> Session {outbound / base:.2f}")  # fmt: skip
        await scale(app, extras, counter)
    finally:
        await app.stop()
        await extras.stop()
        await alice.api.session.close()


if __name__ == "__main__":
    asyncio.run(main())
