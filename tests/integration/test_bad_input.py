"""Bad input from the Session side never reaches a room: each item is dropped with one log
line, and the good message after it still arrives (real Synapse, devnet community server)."""

from __future__ import annotations

import logging
import os

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
from tests.integration.conftest import MatrixUsers, messages_from, room_events, wait_for
from tests.integration.helpers import bridged_room
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
