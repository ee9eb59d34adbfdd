"""Getting into community portals, and keeping them: a wrong server key, a second Matrix
user, the portal alias, the opener's power, unbridging, and an unreachable server. Real
Synapse, real PostgreSQL/SQLite and the devnet's community server."""

from __future__ import annotations

import re
import socket
from typing import Any

from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.errors import MNotFound
from mautrix.types import EventType, PowerLevelStateEventContent, RoomAlias, RoomID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.db.records import PortalKind
from bridge.session.messages import VisibleMessage
from tests.integration.conftest import CommunityDevnet, MatrixUsers, messages_from, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    has_member,
    is_redacted,
    matrix_sees,
    open_management_room,
    start_bridge,
)

ZERO_KEY = "0" * 64
BRIDGE_INFO_TYPES = ("m.bridge", "uk.half-shot.bridge")


def room_link(answer: str) -> RoomID:
    """The room id of the matrix.to link in a bot answer."""
    found = re.search(r"https://matrix.to/#/(![^)\s]+)", answer)
    assert found is not None, answer
    return RoomID(found.group(1))


def documented_alias(devnet: CommunityDevnet, room: str) -> str:
    """The portal alias as the README describes it: #session_<room>.<host>-<port>.<key8>."""
    host_port = devnet.servers.community_url.split("://", 1)[1].replace(":", "-")
    return f"#session_{room}.{host_port}.{devnet.servers.community.pubkey_hex[:8]}:localhost"


async def invited_to(user: Client, room_id: RoomID) -> bool:
    return room_id in (await user.sync(timeout=0)).get("rooms", {}).get("invite", {})


async def community_portals(app: BridgeApp) -> list[tuple[str, str | None]]:
    active = await app.repos.portals.list_active(PortalKind.COMMUNITY)
    return sorted((p.session_key, p.mxid) for p in active)


async def open_portal(user: Client, bot: str, url: str) -> tuple[RoomID, str]:
    """``open`` from ``user``'s management room, joined; the room and the bot's answer."""
    dm = await open_management_room(user, bot)
    await user.send_text(dm, f"open {url}")
    answer = await bot_says(user, dm, bot, "Created")
    room_id = room_link(answer)
    await wait_for(lambda: invited_to(user, room_id), "the invite to the new portal")
    await user.join_room(room_id)
    return room_id, answer


async def room_state(user: Client, room_id: RoomID) -> list[dict[str, Any]]:
    state = await user.api.request(Method.GET, Path.v3.rooms[room_id].state)
    assert isinstance(state, list)
    return state


async def test_a_wrong_public_key_is_refused_and_the_portal_keeps_receiving(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    admin = await matrix_users.new("admin")
    app = await start_bridge(bridge_config, str(admin.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(admin, bot, devnet.url)
        before = await community_portals(app)
        dm = await open_management_room(admin, bot)
        wrong = devnet.url.replace(devnet.servers.community.pubkey_hex, ZERO_KEY)
        assert wrong != devnet.url
        await admin.send_text(dm, f"open {wrong}")
        answer = await bot_says(admin, dm, bot, "public_key")
        assert "not the key of this server" in answer
        assert not [b for b in await messages_from(admin, dm, bot) if "Created" in b]
        assert await community_portals(app) == before

        # The real portal still gets what Session users post.
        sam = await devnet.member()
        await sam.post(devnet.room, VisibleMessage(body="still here after the wrong key"))
        await matrix_sees(admin, room_id, "^still here after the wrong key$")
    finally:
        await app.stop()


async def test_a_second_user_who_opens_a_bridged_room_is_invited_to_its_portal(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    admin = await matrix_users.new("admin")
    bob = await matrix_users.new("bob")  # a bridge user (level "user"), not in the portal
    app = await start_bridge(bridge_config, str(admin.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(admin, bot, devnet.url)
        before = await community_portals(app)
        dm = await open_management_room(bob, bot)
        await bob.send_text(dm, f"open {devnet.url}")
        answer = await bot_says(bob, dm, bot, "existing portal")
        assert "I invited you to the existing portal" in answer
        assert room_link(answer) == room_id
        await wait_for(lambda: invited_to(bob, room_id), "bob's invite to the portal")
        await bob.join_room(room_id)
        assert await has_member(admin, room_id, str(bob.mxid))
        assert await community_portals(app) == before

        # Asked again, the bot says he is in it already; still one portal.
        await bob.send_text(dm, f"open {devnet.url}")
        await bot_says(bob, dm, bot, "and you are in it")
        assert await community_portals(app) == before
    finally:
        await app.stop()


async def test_the_user_who_opens_a_portal_is_its_admin_and_can_redact(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    carol = await matrix_users.new("carol")
    app = await start_bridge(bridge_config, "@nobody:localhost")
    try:
        room_id, _ = await open_portal(carol, bridge_config.bot_mxid, devnet.url)
        levels = await carol.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)
        assert isinstance(levels, PowerLevelStateEventContent)
        assert levels.get_user_level(carol.mxid) == 100

        sam = await devnet.member()
        await sam.post(devnet.room, VisibleMessage(body="spam to remove"))
        spam = await matrix_sees(carol, room_id, "^spam to remove$")
        await carol.redact(room_id, spam.event_id)
        assert await is_redacted(carol, room_id, str(spam.event_id))
    finally:
        await app.stop()


async def test_users_join_public_portals_by_their_alias(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    admin = await matrix_users.new("admin")
    dave = await matrix_users.new("dave")  # never talks to the bot
    bridge_config.bridge.public_portals = True
    app = await start_bridge(bridge_config, str(admin.mxid))
    try:
        bot = bridge_config.bot_mxid
        lobby, answer = await open_portal(admin, bot, devnet.url)
        alias = documented_alias(devnet, devnet.room)
        assert alias in answer
        assert await dave.join_room(RoomAlias(alias)) == lobby
        canonical = await dave.get_state_event(lobby, EventType.ROOM_CANONICAL_ALIAS)
        assert canonical.canonical_alias == alias

        # A portal whose alias went missing (made before portals had aliases) gets it back.
        localpart = alias[1:].split(":", 1)[0]
        await app.appservice.intent.remove_room_alias(localpart)
        await dave.leave_room(lobby)
        assert await dave.join_room(RoomAlias(alias)) == lobby

        # Another room of the same server: its alias creates the portal on demand.
        other = next(t for t in devnet.servers.community.state.rooms if t != devnet.room)
        dev = await dave.join_room(RoomAlias(documented_alias(devnet, other)))
        assert dev != lobby
        portal = await app.repos.portals.get_by_mxid(str(dev))
        assert portal is not None and portal.unbridged_at is None
        sam = await devnet.member()
        await sam.join(other)
        await sam.post(other, VisibleMessage(body="hello to the alias joiners"))
        await matrix_sees(dave, dev, "^hello to the alias joiners$")

        # An alias of a server the bridge does not follow is not created.
        stranger = documented_alias(devnet, devnet.room).replace(
            devnet.servers.community.pubkey_hex[:8], "0" * 8
        )
        try:
            await dave.join_room(RoomAlias(stranger), max_retries=0)
            raise AssertionError("an unknown server's alias was joined")
        except MNotFound:
            pass
    finally:
        await app.stop()


async def test_unbridge_clears_the_bridge_info_and_the_alias(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    carol = await matrix_users.new("carol")
    app = await start_bridge(bridge_config, "@nobody:localhost")
    try:
        bot = bridge_config.bot_mxid
        room_id, answer = await open_portal(carol, bot, devnet.url)
        alias = documented_alias(devnet, devnet.room)
        assert alias in answer

        def bridge_info(state: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {e["type"]: e["content"] for e in state if e["type"] in BRIDGE_INFO_TYPES}

        info = bridge_info(await room_state(carol, room_id))
        assert set(info) == set(BRIDGE_INFO_TYPES)
        assert all(content.get("bridgebot") == bot for content in info.values())

        await carol.send_text(room_id, "!session unbridge")
        await bot_says(carol, room_id, bot, "no longer bridged")
        state = await room_state(carol, room_id)
        assert bridge_info(state) == {key: {} for key in BRIDGE_INFO_TYPES}
        canonical = [e["content"] for e in state if e["type"] == "m.room.canonical_alias"]
        assert all("alias" not in content for content in canonical)
        try:
            await carol.resolve_room_alias(RoomAlias(alias))
            raise AssertionError("the alias still leads to the unbridged room")
        except MNotFound:
            pass
    finally:
        await app.stop()


def unused_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_is_not_called_a_refusal(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    carol = await matrix_users.new("carol")
    app = await start_bridge(bridge_config, "@nobody:localhost")
    try:
        bot = bridge_config.bot_mxid
        dm = await open_management_room(carol, bot)
        nowhere = f"http://127.0.0.1:{unused_loopback_port()}"
        url = devnet.url.replace(devnet.servers.community_url, nowhere)
        await carol.send_text(dm, f"open {url}")
        answer = await bot_says(carol, dm, bot, "could not reach")
        assert nowhere in answer
        assert "refused" not in answer
        assert await community_portals(app) == []
    finally:
        await app.stop()
