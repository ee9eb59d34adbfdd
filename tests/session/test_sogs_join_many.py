"""Joining many community rooms at once (docs/session-protocol.md §5.9): one ``/batch`` per
100 rooms, a room the server does not have is that room's error, and every joined room is
covered by the next poll."""

from __future__ import annotations

import aiohttp

from bridge.session.keys import Identity
from bridge.session.sogs.client import JOIN_BATCH, CommunityClient
from bridge.session.sogs.errors import RoomNotFound
from bridge.session.sogs.models import RoomInfo
from bridge.session.sogs.urls import CommunityServerRef
from tests.sessionnet.community import CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import RequestCounter, serve

ROOMS = 250


async def test_join_many_asks_once_per_batch_of_rooms() -> None:
    server = CommunityServer([RoomSpec(f"room{i}", f"Room {i}") for i in range(ROOMS)])
    counter = RequestCounter()
    runner, url = await serve("127.0.0.1", server.make_app([counter.middleware]))
    try:
        async with aiohttp.ClientSession() as http:
            ref = CommunityServerRef(url, server.pubkey)
            client = CommunityClient(http, Identity.generate(), ref)
            tokens = [f"room{i}" for i in range(ROOMS)] + ["missing"]
            outcomes = await client.join_many(tokens)
            assert counter.paths == ["/batch"] * -(-(ROOMS + 1) // JOIN_BATCH)
            assert isinstance(outcomes["missing"], RoomNotFound)
            joined = [t for t, o in outcomes.items() if isinstance(o, RoomInfo)]
            assert joined == tokens[:-1]
            assert outcomes["room7"] == await client.room("room7")
            assert client.joined == tuple(joined)
            result = await client.poll()
            assert set(result.rooms) == set(joined)
            assert all(update.error is None for update in result.rooms.values())
    finally:
        await runner.cleanup()
