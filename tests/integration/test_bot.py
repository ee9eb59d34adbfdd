"""The bot on a real Synapse, with the bridge's database on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import EventType, Membership, RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import Config
from tests.integration.conftest import CommunityDevnet, MatrixUsers, messages_from, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    has_member,
    matrix_event,
    open_management_room,
    start_bridge,
)


async def test_user_dms_the_bot_and_gets_help(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    alice = await matrix_users.new("alice")
    room_id = await open_management_room(alice, bot)
    await alice.send_text(RoomID(room_id), "help")

    async def help_reply() -> str | None:
        bodies = await messages_from(alice, room_id, bot)
        return next((b for b in bodies if "`ping`" in b and "`version`" in b), None)

    text = await wait_for(help_reply, "the bot's answer to help")
    assert "management room" in text


async def test_prefix_is_needed_outside_the_management_room(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    bob = await matrix_users.new("bob")
    room_id = await bob.create_room(invitees=[UserID(bot)])  # not a DM

    await wait_for(lambda: has_member(bob, room_id, bot), "the bot to join the group room")
    await bob.send_text(room_id, "ping")  # no prefix: ordinary chat, ignored
    await bob.send_text(room_id, "!session ping")

    async def pong() -> list[str] | None:
        return [
            b for b in await messages_from(bob, str(room_id), bot) if b.startswith("Pong")
        ] or None

    assert len(await wait_for(pong, "the answer to !session ping")) == 1
    # The bot answered only the prefixed command; the unprefixed one got no reply at all.
    assert all("Unknown command" not in b for b in await messages_from(bob, str(room_id), bot))


async def test_unknown_command_and_control_characters_get_an_answer(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    carol = await matrix_users.new("carol")
    room_id = await open_management_room(carol, bot)
    await carol.send_text(RoomID(room_id), "pnig")
    await carol.send_text(RoomID(room_id), "ping\u0007")

    async def answers() -> list[str] | None:
        bodies = await messages_from(carol, room_id, bot)
        unknown = [b for b in bodies if "Unknown command `pnig`" in b]
        control = [b for b in bodies if "control characters" in b]
        return unknown + control if unknown and control else None

    found = await wait_for(answers, "answers to a typo and a control character")
    assert "Did you mean `ping`?" in found[0]


async def test_invite_from_a_user_without_permission_is_declined(
    bridge_config: Config, matrix_users: MatrixUsers
) -> None:
    bridge_config.bridge.permissions = {"@admin:localhost": "admin"}
    app = BridgeApp(bridge_config)
    await app.start()
    try:
        bot = bridge_config.bot_mxid
        mallory = await matrix_users.new("mallory")
        room_id = await mallory.create_room(is_direct=True, invitees=[UserID(bot)])

        async def declined() -> Any:
            state = await mallory.get_state_event(room_id, EventType.ROOM_MEMBER, bot)
            return state if state.membership == Membership.LEAVE else None

        member = await wait_for(declined, "the bot to decline the invite")
        assert "not allowed" in (member.reason or "")
    finally:
        await app.stop()


class CountingBridge(BridgeApp):
    """The bridge, counting how often each Matrix event reaches the router."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.handled: list[str] = []

    async def _route_event(self, raw: dict[str, Any]) -> None:
        self.handled.append(str(raw.get("event_id")))
        await super()._route_event(raw)


async def put_transaction(config: Config, txn_id: str, events: list[dict[str, Any]]) -> int:
    url = f"{config.appservice.address}/_matrix/app/v1/transactions/{txn_id}"
    headers = {"Authorization": f"Bearer {config.appservice.hs_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.put(url, json={"events": events}, headers=headers) as r,
    ):
        return r.status


async def test_replayed_transaction_is_processed_once_even_across_a_restart(
    bridge_config: Config, matrix_users: MatrixUsers
) -> None:
    bot = bridge_config.bot_mxid
    first = CountingBridge(bridge_config)
    await first.start()
    dave = await matrix_users.new("dave")
    try:
        room_id = await open_management_room(dave, bot)
        event_id = f"$replayed-{uuid.uuid4().hex}"
        event = {
            "type": "m.room.message",
            "room_id": room_id,
            "sender": str(dave.mxid),
            "event_id": event_id,
            "origin_server_ts": int(time.time() * 1000),
            "content": {"msgtype": "m.text", "body": "ping"},
        }
        txn_id = f"replay-{uuid.uuid4().hex}"
        assert await put_transaction(bridge_config, txn_id, [event]) == 200

        async def pong() -> bool:
            return any(b.startswith("Pong") for b in await messages_from(dave, room_id, bot))

        await wait_for(pong, "the answer to the transaction's ping")
        assert await put_transaction(bridge_config, txn_id, [event]) == 200
        await wait_for(lambda: first.repos.inbox.is_empty(), "the inbox to drain")
        assert first.handled.count(event_id) == 1
    finally:
        await first.stop()

    second = CountingBridge(bridge_config)
    await second.start()
    try:
        assert await put_transaction(bridge_config, txn_id, [event]) == 200
        await wait_for(lambda: second.repos.inbox.is_empty(), "the inbox to drain")
        assert event_id not in second.handled
        pongs = [b for b in await messages_from(dave, room_id, bot) if b.startswith("Pong")]
        assert len(pongs) == 1
    finally:
        await second.stop()


async def bot_reply_to(user: Client, room_id: RoomID, bot: str, event_id: str) -> str:
    """The body of the bot's notice that replies to ``event_id``, once it is there."""

    def match(event: Any) -> bool:
        relates = event.content.serialize().get("m.relates_to") or {}
        reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
        return str(event.sender) == bot and reply_to == event_id

    found = await matrix_event(user, room_id, f"the bot's answer to {event_id}", match)
    return str(found.content.body)


async def test_relay_and_no_level_users_are_told_what_they_can_do(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    admin = await matrix_users.new("admin")
    relay_user = await matrix_users.new("relayonly")
    nobody = await matrix_users.new("nobody")
    app = await start_bridge(bridge_config, str(admin.mxid))
    # The README's levels: the relay user may only be relayed, the other one matches nothing.
    bridge_config.bridge.permissions.clear()
    bridge_config.bridge.permissions.update(
        {str(admin.mxid): "admin", str(relay_user.mxid): "relay"}
    )
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(admin, bot, devnet.url)  # relay stays off
        for user in (relay_user, nobody):
            await admin.invite_user(room_id, user.mxid)
            await user.join_room(room_id)

        # A message without a login, relay off: each is told what they can do at their level.
        sent = await relay_user.send_text(room_id, "hello from a relay user")
        text = await bot_reply_to(admin, room_id, bot, str(sent))
        assert "relay is off in this room" in text and "relayed when relay is on" in text
        assert "`login`" not in text
        sent = await nobody.send_text(room_id, "hello from nobody")
        text = await bot_reply_to(admin, room_id, bot, str(sent))
        assert "not allowed to use this bridge" in text and "Ask the bridge admin" in text
        assert "`login`" not in text

        # Commands: the relay user learns what relay level allows, not to log in.
        await relay_user.send_text(room_id, "!session login")
        text = await bot_says(admin, room_id, bot, "not allowed to use `login`")
        assert "*relay*" in text and "relayed to Session when a bridge admin" in text
        await nobody.send_text(room_id, "!session ping")
        text = await bot_says(admin, room_id, bot, "^You are not allowed to use this bridge")
        assert "Ask the bridge admin" in text
    finally:
        await app.stop()
