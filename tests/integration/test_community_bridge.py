"""Community rooms bridged both ways: real Synapse, real PostgreSQL/SQLite, the devnet's
community server, and Session users on it made with our own Session client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from mautrix.client import Client
from mautrix.types import RoomID, UserID

from bridge.config import Config
from bridge.session.blinding import blind15_id
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import MatrixUsers, room_events, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    matrix_sees,
    session_sees,
    start_bridge,
)
from tests.sessionnet.extras import start_community_and_files


@dataclass
class Community:
    url: str
    http: aiohttp.ClientSession

    def member(self) -> CommunityClient:
        client, _ = CommunityClient.from_url(self.http, Identity.generate(), self.url)
        return client


@pytest.fixture
async def community() -> AsyncIterator[Community]:
    info, cleanup = await start_community_and_files()
    room = info["rooms"][0]
    url = f"{info['community']}/{room}?public_key={info['community_pubkey']}"
    async with aiohttp.ClientSession() as http:
        yield Community(url, http)
    await cleanup()


async def matrix_edit(user: Client, room_id: RoomID, new_body: str) -> dict[str, Any]:
    """The raw content of an edit event whose new body is ``new_body``."""

    async def find() -> dict[str, Any] | None:
        for event in await room_events(user, str(room_id)):
            content = event.content.serialize()
            if content.get("m.new_content", {}).get("body") == new_body:
                return content
        return None

    return await wait_for(find, f"an edit to {new_body!r}")


async def test_community_room_bridged_both_ways(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, community.url)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)

        # Session -> Matrix, through a ghost of Sam's blinded id, with his name.
        await sam.post(room, VisibleMessage(body="hello from Session", profile=None))
        event = await matrix_sees(alice, room_id, "^hello from Session$")
        assert re.fullmatch(r"@session_15[0-9a-f]{64}:localhost", str(event.sender))
        assert event.content["m.mentions"] == {}

        # Matrix -> Session without a login and without relay: refused, with the reason.
        await alice.send_text(room_id, "not going anywhere")
        await bot_says(alice, room_id, bot, "no Session login and relay is off")

        # Relay on (alice is a bridge admin): her message reaches Session with her name.
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.send_text(room_id, "relayed hello")
        relayed = await session_sees(sam, room, "relayed hello$")
        assert relayed.content.body.endswith(": relayed hello")  # type: ignore[union-attr]

        # Session edits and deletions follow.
        posted = await sam.post(room, VisibleMessage(body="first version"))
        await matrix_sees(alice, room_id, "^first version$")
        await sam.edit(room, posted.id, VisibleMessage(body="second version"))
        edit = await matrix_edit(alice, room_id, "second version")
        assert edit["body"] == "* second version"
    finally:
        await app.stop()


async def test_logged_in_user_posts_as_themselves_and_permissions_hold(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    alice = await matrix_users.new("alice")
    bob = await matrix_users.new("bob")
    app = await start_bridge(bridge_config, "@nobody:localhost")
    # Everyone here may only talk through the relay; alice is a bridge user.
    bridge_config.bridge.permissions.update({"localhost": "relay", str(alice.mxid): "user"})
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, community.url)
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        login = await app.logins.create_new(str(alice.mxid))
        await alice.send_text(room_id, "from my own account")
        sam = community.member()
        await sam.join(room)
        seen = await session_sees(sam, room, "^from my own account$")
        assert str(seen.author) == blind15_id(login.identity, sam.server.pubkey).value
        await alice.send_text(room_id, "!session whoami")
        await bot_says(alice, room_id, bot, f"`{seen.author}`")

        # bob (relay level) can neither unbridge, nor turn relay on, nor bridge a room.
        await alice.invite_user(room_id, bob.mxid)
        await bob.join_room(room_id)
        for command in ("unbridge", "relay on", f"bridge {community.url}"):
            await bob.send_text(room_id, f"!session {command}")
            name = command.split()[0]
            await bot_says(alice, room_id, bot, f"not allowed to use `{name}`")
        assert (await app.repos.portals.get_by_mxid(str(room_id))).unbridged_at is None  # type: ignore[union-attr]

        # alice unbridges her room: it stays, the mapping is kept, the bridge stops.
        await alice.send_text(room_id, "!session unbridge")
        await bot_says(alice, room_id, bot, "no longer bridged")
        portal = await app.repos.portals.get_by_mxid(str(room_id))
        assert portal is not None and portal.unbridged_at is not None
    finally:
        await app.stop()


async def test_a_post_interrupted_before_it_was_recorded_is_not_posted_twice(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, community.url)
        portal = await app.repos.portals.get_by_mxid(str(room_id))
        assert portal is not None and app.communities is not None
        client, token = app.communities.client_for(portal)
        # A previous attempt posted this and then the bridge died before recording it.
        sent_at = 1_790_000_000_123
        await client.post(token, VisibleMessage(body="alice: only once", sig_timestamp=sent_at))
        payload = {"text": "alice: only once", "name": "alice", "sender": str(alice.mxid),
                   "sent_at": sent_at}  # fmt: skip
        await app.repos.outbox.enqueue(
            portal.id, "sogs_post", json.dumps(payload), matrix_event_id="$interrupted"
        )

        async def recorded() -> bool:
            return await app.repos.messages.get_by_mxid("$interrupted") is not None

        await wait_for(recorded, "the interrupted post to be recorded")
        sam = community.member()
        await sam.join(token)
        bodies = [m.content.body for m in await sam.recent(token, 50)]  # type: ignore[union-attr]
        assert bodies.count("alice: only once") == 1
    finally:
        await app.stop()


async def test_open_creates_a_new_portal_room_and_invites_the_user(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    carol = await matrix_users.new("carol")
    app = await start_bridge(bridge_config, "@nobody:localhost")
    try:
        bot = bridge_config.bot_mxid
        dm = await carol.create_room(is_direct=True, invitees=[UserID(bot)])
        await bot_says(carol, dm, bot, "management room")
        await carol.send_text(dm, f"open {community.url}")
        answer = await bot_says(carol, dm, bot, "Created")
        room_id = RoomID(re.search(r"https://matrix.to/#/(![^)\s]+)", answer).group(1))  # type: ignore[union-attr]

        async def invited() -> bool:
            return room_id in (await carol.sync(timeout=0)).get("rooms", {}).get("invite", {})

        await wait_for(invited, "the invite to the new portal")
        await carol.join_room(room_id)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)
        await sam.post(room, VisibleMessage(body="welcome to the new room"))
        await matrix_sees(carol, room_id, "^welcome to the new room$")
        assert await app.repos.portals.get_by_mxid(str(room_id)) is not None
    finally:
        await app.stop()
