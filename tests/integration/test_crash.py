"""kill -9 in the middle of traffic in both directions: after a restart nothing is lost and
nothing is repeated. The bridge runs as its own process (``python -m bridge``) against the real
Synapse and PostgreSQL, and the devnet's community server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID

from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import MatrixUsers, messages_from, room_events, wait_for
from tests.integration.helpers import BridgeProcess, has_member, write_process_config
from tests.sessionnet.extras import CommunityAndFiles

N = 30


async def session_bodies(client: CommunityClient, room: str) -> list[str]:
    posts = await client.recent(room, 200)
    bodies = [m.content.body or "" for m in posts if isinstance(m.content, VisibleMessage)]
    return list(reversed(bodies))  # recent() is newest first


async def matrix_bodies(user: Client, room_id: RoomID) -> list[str]:
    return [
        e.content.body
        for e in await room_events(user, str(room_id), limit=500)
        if e.type == EventType.ROOM_MESSAGE and str(e.sender).startswith("@session_")
    ]


async def test_kill_9_mid_traffic_loses_nothing_and_repeats_nothing(
    tmp_path: Path, matrix_users: MatrixUsers, servers: CommunityAndFiles
) -> None:
    alice = await matrix_users.new("alice")
    config, address = await write_process_config(tmp_path, str(alice.mxid))
    bridge = BridgeProcess(config, address, tmp_path / "bridge.log")
    await bridge.start()
    try:
        bot = "@sessionbot:localhost"
        server = servers.community
        url = f"{servers.community_url}/lobby?public_key={server.pubkey_hex}"
        room_id = await alice.create_room(
            invitees=[UserID(bot)], power_level_override={"users": {bot: 50}}
        )

        await wait_for(lambda: has_member(alice, room_id, bot), "the bot to join")
        for command, answer in ((f"bridge {url}", "now bridged"), ("relay on", "Relay is on")):
            await alice.send_text(room_id, f"!session {command}")

            async def answered(answer: str = answer) -> bool:
                return any(answer in b for b in await messages_from(alice, str(room_id), bot))

            await wait_for(answered, f"the bot to answer {command!r}")

        async with aiohttp.ClientSession() as http:
            sam, _ = CommunityClient.from_url(http, Identity.generate(), url)
            await sam.join("lobby")

            async def session_traffic() -> None:
                for i in range(N):
                    await sam.post("lobby", VisibleMessage(body=f"s-{i}"))

            async def matrix_traffic() -> None:
                for i in range(N):
                    await alice.send_text(room_id, f"m-{i}")

            traffic = asyncio.gather(session_traffic(), matrix_traffic())

            async def some_bridged() -> bool:
                to_matrix = await matrix_bodies(alice, room_id)
                to_session = [b for b in await session_bodies(sam, "lobby") if ": m-" in b]
                return len(to_matrix) >= 3 and len(to_session) >= 3

            await wait_for(some_bridged, "traffic to flow both ways")
            await bridge.kill()
            await traffic
            await bridge.start()

            async def all_in_matrix() -> list[str] | None:
                bodies = await matrix_bodies(alice, room_id)
                return bodies if len(set(bodies)) == N else None

            async def all_in_session() -> list[str] | None:
                bodies = [b for b in await session_bodies(sam, "lobby") if ": m-" in b]
                return bodies if len(set(bodies)) == N else None

            in_matrix = await wait_for(all_in_matrix, "every Session message in Matrix", 90)
            try:
                in_session = await wait_for(all_in_session, "every Matrix message in Session", 90)
            except BaseException:
                print("SESSION SAW:", await session_bodies(sam, "lobby"))
                print("BRIDGE LOG:", bridge.log.read_text()[-6000:])
                raise
        assert in_matrix == [f"s-{i}" for i in range(N)]  # each once, in order
        assert len(in_session) == N  # each once
        assert [b.split(": ", 1)[1] for b in in_session] == [f"m-{i}" for i in range(N)]
    finally:
        assert await bridge.stop() == 0
