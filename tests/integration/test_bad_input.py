"""Bad input from the Session side never reaches a room: each item is dropped with one log
line, and the good message after it still arrives (real Synapse, devnet community server).
Hostile appservice transactions never wedge the Matrix side: each is answered 200 (bad parts
dropped or cleaned) or 400, never 500, and the bridge goes on answering (real Synapse and
PostgreSQL)."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from mautrix.types import EventType, UserID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.session.blinding import blind15_id
from bridge.session.keys import Identity
from bridge.session.messages import Typing, VisibleMessage, content_to_proto
from bridge.session.padding import pad_message
from bridge.session.sogs.posts import sign_post
from tests.integration.conftest import (
    MatrixUsers,
    create_postgres_database,
    messages_from,
    require_env,
    room_events,
    wait_for,
)
from tests.integration.helpers import bridged_room
from tests.matrix.fuzz_run import fuzz_durable_inbox
from tests.sessionnet.extras import CommunityAndFiles


async def test_bad_community_posts_are_dropped_with_one_log_line(
    bridge_config: Config,
    matrix_users: MatrixUsers,
    servers: CommunityAndFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    bridge_config.session.community_poll_interval = 0.2
    app = BridgeApp(bridge_config)
    await app.start()
    try:
        alice = await matrix_users.new("alice")
        server = servers.community
        room_url = f"{servers.community_url}/lobby?public_key={server.pubkey_hex}"
        room_id = await bridged_room(
            alice, bridge_config.bot_mxid, room_url, rights_at_creation=True
        )
        state, room = server.state, server.state.room("lobby")
        sam, mallory = Identity.generate(), Identity.generate()
        sam_id = blind15_id(sam, server.pubkey).value

        def good_data(body: str) -> bytes:
            return pad_message(content_to_proto(VisibleMessage(body=body)))

        forged = good_data("forged by mallory")
        state.add_post(room, sam_id, forged, sign_post(mallory, server.pubkey, forged))
        garbage = os.urandom(300)
        state.add_post(room, sam_id, garbage, sign_post(sam, server.pubkey, garbage))
        typing = pad_message(content_to_proto(Typing(started=True, timestamp=1)))
        state.add_post(room, sam_id, typing, sign_post(sam, server.pubkey, typing))
        good = good_data("the real message")
        state.add_post(room, sam_id, good, sign_post(sam, server.pubkey, good))

        async def delivered() -> list[str] | None:
            bodies = [
                e.content.body
                for e in await room_events(alice, str(room_id))
                if e.type == EventType.ROOM_MESSAGE and str(e.sender).startswith("@session_")
            ]
            return bodies if "the real message" in bodies else None

        bodies = await wait_for(delivered, "the good message")
        assert bodies == ["the real message"]
        dropped = [r for r in caplog.records if "Dropping community message" in r.getMessage()]
        assert len(dropped) == 2  # the forged signature and the garbage, one line each
        assert all("\n" not in r.getMessage() for r in dropped)
        skipped = [r for r in caplog.records if "of kind Typing not bridged" in r.getMessage()]
        assert len(skipped) == 1
    finally:
        await app.stop()


async def test_bad_matrix_event_is_dropped_and_later_ones_still_work(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    # A malformed event in a transaction (no content) is logged and skipped, not retried forever.
    config = running_bridge.config
    bob = await matrix_users.new("bob")
    room_id = await bob.create_room(is_direct=True, invitees=[UserID(config.bot_mxid)])

    async def welcomed() -> bool:
        return bool(await messages_from(bob, str(room_id), config.bot_mxid))

    await wait_for(welcomed, "the welcome")
    bad = {"type": "m.room.message", "room_id": str(room_id), "event_id": "$bad", "sender": 5}
    url = f"{config.appservice.address}/_matrix/app/v1/transactions/bad-{os.getpid()}"
    headers = {"Authorization": f"Bearer {config.appservice.hs_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.put(url, json={"events": [bad]}, headers=headers) as r,
    ):
        assert r.status == 200
    await bob.send_text(room_id, "ping")

    async def pong() -> bool:
        return any(
            b.startswith("Pong") for b in await messages_from(bob, str(room_id), config.bot_mxid)
        )

    await wait_for(pong, "the bot to keep answering")
    await wait_for(running_bridge.repos.inbox.is_empty, "the bad event to be dropped, not retried")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_hostile_transactions_are_answered_and_nothing_is_wedged(
    running_bridge: BridgeApp, matrix_users: MatrixUsers, caplog: pytest.LogCaptureFixture
) -> None:
    # Each of these was answered 500, which Synapse retries forever, holding back everything
    # after it (the NUL and the lone surrogate because PostgreSQL cannot store them).
    caplog.set_level(logging.WARNING, logger="bridge")
    config = running_bridge.config
    bob = await matrix_users.new("bob")
    room_id = await bob.create_room(is_direct=True, invitees=[UserID(config.bot_mxid)])

    async def pongs() -> int:
        bodies = await messages_from(bob, str(room_id), config.bot_mxid)
        return sum(b.startswith("Pong") for b in bodies)

    await wait_for(lambda: messages_from(bob, str(room_id), config.bot_mxid), "the welcome")
    # A good event among the junk: a "ping" from bob, with a lone surrogate and a NUL in it.
    ping = {
        "type": "m.room.message",
        "room_id": str(room_id),
        "event_id": f"$hostile-{uuid.uuid4().hex}",
        "sender": bob.mxid,
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": "ping", "x\ud800": "\u0000\udfff"},
    }
    deep_event = '{"type": "m.room.message", "content": ' + _nested(100_000) + "}"
    run = uuid.uuid4().hex
    hostile: list[tuple[str, str, int]] = [
        (f"{run}-1", json.dumps({"events": [1, "x", None, ping]}), 200),
        (f"{run}-2", _nested(100_000), 400),
        (f"{run}-3", '{"events": [' + deep_event + "]}", 200),
        (
            f"{run}-4",
            json.dumps({"events": [dict(ping, event_id="$s", room_id="!\ud800:x")]}),
            200,
        ),
        (f"{run}-5%00", json.dumps({"events": []}), 400),
        (f"{run}-6", json.dumps({"events": [], "ephemeral": [1, "x", None, []]}), 200),
        (f"{run}-7", json.dumps({"events": [dict(ping, room_id="!a\u0000:x")]}), 200),
    ]
    headers = {"Authorization": f"Bearer {config.appservice.hs_token}"}
    url = f"{config.appservice.address}/_matrix/app/v1/transactions/"
    async with aiohttp.ClientSession() as http:
        for txn_id, body, expected in hostile:
            async with http.put(url + txn_id, data=body.encode(), headers=headers) as resp:
                assert resp.status == expected, (txn_id, await resp.text())
    assert "Could not store transaction" not in caplog.text
    # Synapse's own transactions still arrive: bob's real ping is answered too.
    await bob.send_text(room_id, "ping")
    await wait_for(lambda: _at_least(pongs, 2), "the bot to answer both pings")
    await wait_for(running_bridge.repos.inbox.is_empty, "every stored event to be handled")
    assert await pongs() == 2  # the ping among the junk was handled exactly once


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n


async def test_fuzzed_transactions_through_the_postgresql_inbox() -> None:
    # The SQLite run (5,000) is in tests/matrix/test_fuzz_transactions.py.
    url = await create_postgres_database(require_env("SMB_TEST_POSTGRES_URL"))
    await fuzz_durable_inbox(url, 2_000)
