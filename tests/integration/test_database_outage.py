"""PostgreSQL stopped under a running bridge, during traffic both ways, then started again
(docs/architecture.md §4.7): readiness is false during the outage and true after, the loops
come back by themselves (no restart of the bridge), and every message arrives exactly once on
the other side.

The test command's PostgreSQL is shared by every test, so this test runs the bridge on a
PostgreSQL of its own (tests/integration/pgcluster.py) and stops that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from mautrix.client import Client
from mautrix.types import RoomID

from bridge.app import BridgeApp
from bridge.config import load_config
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.supervisor import Loop
from tests.integration.conftest import (
    CommunityDevnet,
    MatrixUsers,
    messages_from,
    require_env,
    wait_for,
)
from tests.integration.helpers import bot_says, bridged_room, matrix_sees, start_bridge
from tests.integration.pgcluster import PostgresCluster

# After the database is back, Synapse sends the transactions it could not deliver at its next
# retry: it backs off 2, 4, 8, 16 s... after failures, so allow for that.
RECOVERY_TIMEOUT = 120.0
MESSAGES = 5
OUTAGE_S = 10.0


@pytest.fixture
async def own_postgres() -> AsyncIterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        await cluster.remove()


async def is_ready(address: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{address}/_matrix/mau/ready") as resp,
        ):
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def session_bodies(member: CommunityClient, room: str) -> list[str]:
    posts = [m.content for m in await member.recent(room, 100)]
    return [p.body or "" for p in posts if isinstance(p, VisibleMessage)]


def loop_named(app: BridgeApp, name: str) -> Loop:
    return next(loop for loop in app.supervisor.loops if loop.name == name)


async def test_the_bridge_rides_out_a_database_outage(
    own_postgres: PostgresCluster, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    config = load_config(Path(require_env("SMB_TEST_CONFIG")))
    config.database.url = own_postgres.url
    alice: Client = await matrix_users.new("alice")
    app = await start_bridge(config, str(alice.mxid))
    address = config.appservice.address
    try:
        bot = config.bot_mxid
        room_id = RoomID(await bridged_room(alice, bot, devnet.url))
        sam = await devnet.member()
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await sam.post(devnet.room, VisibleMessage(body="s0 before"))
        ghost = str((await matrix_sees(alice, room_id, "^s0 before$")).sender)
        assert await is_ready(address)

        await own_postgres.stop()
        stopped = time.monotonic()

        async def not_ready() -> bool:
            return not await is_ready(address)

        await wait_for(not_ready, "readiness to turn false while the database is down")
        for i in range(1, MESSAGES + 1):
            await alice.send_text(room_id, f"m{i} during the outage")
            await sam.post(devnet.room, VisibleMessage(body=f"s{i} during the outage"))

        async def outbox_down() -> bool:
            return "outbox" in app.supervisor.down()

        # The outage lasts until the outbox loop has failed on it and waits to be restarted,
        # and at least OUTAGE_S (the fault itself, not a wait for an outcome).
        await wait_for(outbox_down, "the outbox loop to fail on the missing database")
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        assert await not_ready()
        await own_postgres.start()

        async def ready() -> bool:
            return await is_ready(address)

        await wait_for(ready, "readiness to come back", RECOVERY_TIMEOUT)
        expected_session = [f"m{i} during the outage" for i in range(1, MESSAGES + 1)]
        expected_matrix = [f"s{i} during the outage" for i in range(1, MESSAGES + 1)]

        async def all_on_session() -> bool:
            bodies = await session_bodies(sam, devnet.room)
            return all(any(b.endswith(m) for b in bodies) for m in expected_session)

        async def all_on_matrix() -> bool:
            bodies = await messages_from(alice, str(room_id), ghost)
            return all(m in bodies for m in expected_matrix)

        await wait_for(all_on_matrix, "the Session posts on Matrix", RECOVERY_TIMEOUT)
        await wait_for(all_on_session, "the Matrix messages on Session", RECOVERY_TIMEOUT)

        # Exactly once each, in order, on both sides.
        on_session = list(reversed(await session_bodies(sam, devnet.room)))  # oldest first
        relayed = [b.split(": ", 1)[1] for b in on_session if ": m" in b]  # "alice-…: m1 …"
        assert relayed == expected_session, on_session
        on_matrix = await messages_from(alice, str(room_id), ghost)
        assert [b for b in on_matrix if "during the outage" in b] == expected_matrix, on_matrix

        # The same bridge, no restart: the loops that failed were started again and run.
        outbox = loop_named(app, "outbox")
        assert outbox.restarts >= 1 and outbox.up
        assert app.supervisor.healthy and app.readiness.database_up
    finally:
        await app.stop()
