"""kill -9 (three times) in the middle of direct-chat traffic in both directions: after the
restarts nothing is lost and nothing is repeated. The bridge runs as its own process
(``python -m bridge``) against the real Synapse and PostgreSQL and the devnet's storage nodes
and file server; the Session user is our own :class:`~bridge.session.client.SessionClient`."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from mautrix.client import Client
from mautrix.types import EventType, RoomCreatePreset, RoomID

from bridge.session.keys import Identity
from tests.integration.conftest import MatrixUsers, devnet_settings, room_events, wait_for
from tests.integration.helpers import (
    BridgeProcess,
    bot_says,
    open_management_room,
    write_process_config,
)
from tests.sessionnet.dm_setup import Inbox, dm_world

N = 30
BOT = "@sessionbot:localhost"


async def log_in(user: Client) -> str:
    """Log ``user`` in with a new recovery phrase through the bot; their Session ID."""
    identity = Identity.generate()
    room_id = await open_management_room(user, BOT, RoomCreatePreset.TRUSTED_PRIVATE)
    await user.send_text(room_id, f"login {identity.phrase}")
    await bot_says(user, room_id, BOT, "Logged in as Session account")
    return identity.session_id.value


async def join_invited_room(user: Client) -> RoomID:
    """Join the first room ``user`` is invited to (the new direct-chat portal)."""

    attempts = 0

    async def invited() -> RoomID | None:
        nonlocal attempts
        attempts += 1  # Synapse caches the answer to an identical /sync for a while
        rooms = (await user.sync(timeout=attempts)).get("rooms", {}).get("invite", {})
        return RoomID(next(iter(rooms))) if rooms else None

    room_id = await wait_for(invited, "the invite to the direct chat")
    await user.join_room(room_id)
    return room_id


async def matrix_bodies(user: Client, room_id: RoomID) -> list[str]:
    return [
        e.content.body
        for e in await room_events(user, str(room_id), limit=500)
        if e.type == EventType.ROOM_MESSAGE and str(e.sender).startswith("@session_")
    ]


def session_bodies(inbox: Inbox) -> list[str]:
    return [b for b in inbox.bodies() if b is not None]


async def test_kill_9_mid_direct_chat_traffic_loses_nothing_and_repeats_nothing(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    async with dm_world() as world:
        config, address = await write_process_config(
            tmp_path,
            str(alice.mxid),
            {("session", k): v for k, v in devnet_settings(world).items()},
        )
        bridge = BridgeProcess(config, address, tmp_path / "bridge.log")
        await bridge.start()
        try:
            ours = await log_in(alice)
            inbox = Inbox()
            sam = await world.client(inbox=inbox, start=False)
            await sam.set_profile("Sam")
            await sam.start()
            await sam.send_text(ours, "hello")
            room_id = await join_invited_room(alice)

            async def session_traffic() -> None:
                for i in range(N):
                    await sam.send_text(ours, f"s-{i}")

            async def matrix_traffic() -> None:
                for i in range(N):
                    await alice.send_text(room_id, f"m-{i}")

            traffic = asyncio.gather(session_traffic(), matrix_traffic())

            async def bridged(count: int) -> bool:
                to_matrix = [b for b in await matrix_bodies(alice, room_id) if b[:2] == "s-"]
                to_session = [b for b in session_bodies(inbox) if b[:2] == "m-"]
                return len(to_matrix) >= count and len(to_session) >= count

            # Killed three times, at different points of the traffic.
            for count in (3, N // 3, 2 * N // 3):
                await wait_for(functools.partial(bridged, count), f"{count} messages each way", 90)
                await bridge.kill()
                await bridge.start()
            await traffic
            # A last message each way: each side handles its traffic in order, so once it
            # arrived, so did every re-delivery of what came before it.
            await sam.send_text(ours, "s-end")
            await alice.send_text(room_id, "m-end")

            async def matrix_done() -> list[str] | None:
                bodies = await matrix_bodies(alice, room_id)
                return bodies if "s-end" in bodies else None

            async def session_done() -> list[str] | None:
                bodies = session_bodies(inbox)
                return bodies if "m-end" in bodies else None

            try:
                in_matrix = await wait_for(matrix_done, "every Session message in Matrix", 120)
                in_session = await wait_for(session_done, "every Matrix message in Session", 120)
            except BaseException:
                print("SESSION SAW:", session_bodies(inbox))
                print("BRIDGE LOG:", bridge.log.read_text()[-6000:])
                raise
        finally:
            assert await bridge.stop() == 0
    assert in_matrix == ["hello", *(f"s-{i}" for i in range(N)), "s-end"]  # once, in order
    assert in_session == [*(f"m-{i}" for i in range(N)), "m-end"]
