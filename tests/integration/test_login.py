"""Session logins through the bot, on a real Synapse."""

from __future__ import annotations

import re

from mautrix.types import RoomCreatePreset, UserID

from bridge.app import BridgeApp
from tests.integration.conftest import MatrixUsers, wait_for
from tests.integration.helpers import bot_says, has_member, is_redacted, open_management_room
from tests.vectors import load

CASE = load("session-protocol")["identity"]["cases"][0]


async def test_login_with_phrase_redacts_it_and_whoami_shows_the_account(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    erin = await matrix_users.new("erin")
    room_id = await open_management_room(erin, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    await erin.send_text(room_id, "login")
    await bot_says(erin, room_id, bot, "recovery phrase as your next message")
    phrase_event = await erin.send_text(room_id, CASE["phrase"])
    await bot_says(erin, room_id, bot, f"Logged in as Session account `{CASE['session_id']}`")
    assert await is_redacted(erin, room_id, phrase_event)
    await erin.send_text(room_id, "whoami")
    await bot_says(erin, room_id, bot, f"- `{CASE['session_id']}`")
    # The seed is stored, but only encrypted.
    (login,) = await running_bridge.repos.users.list_logins(str(erin.mxid))
    assert bytes.fromhex(CASE["seed16"]) not in login.encrypted_seed


async def test_bad_phrase_is_refused_with_a_reason_and_still_removed(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    frank = await matrix_users.new("frank")
    room_id = await open_management_room(frank, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    bad = await frank.send_text(room_id, "login " + " ".join(CASE["phrase"].split()[:12]))
    await bot_says(frank, room_id, bot, "Login failed: A Session recovery phrase has 13 words")
    assert await is_redacted(frank, room_id, bad)


async def test_login_new_then_logout(running_bridge: BridgeApp, matrix_users: MatrixUsers) -> None:
    bot = running_bridge.config.bot_mxid
    gina = await matrix_users.new("gina")
    room_id = await open_management_room(gina, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    await gina.send_text(room_id, "login new")
    text = await bot_says(gina, room_id, bot, "Created the Session account")
    session_id = re.search(r"`(05[0-9a-f]{64})`", text).group(1)  # type: ignore[union-attr]
    assert len(re.search(r"phrase is:\s+`([a-z ]+)`", text).group(1).split()) == 13  # type: ignore[union-attr]
    await gina.send_text(room_id, f"logout {session_id}")
    await bot_says(gina, room_id, bot, f"Logged out of `{session_id}`")
    await gina.send_text(room_id, "whoami")
    await bot_says(gina, room_id, bot, "You have no Session login")


async def test_login_outside_the_management_room_is_refused(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    hank = await matrix_users.new("hank")
    room_id = await hank.create_room(invitees=[UserID(bot)])

    await wait_for(lambda: has_member(hank, room_id, bot), "the bot to join")
    await hank.send_text(room_id, "!session login")
    await bot_says(hank, room_id, bot, "log in only in your management room")
    assert await running_bridge.repos.users.list_logins(str(hank.mxid)) == []
