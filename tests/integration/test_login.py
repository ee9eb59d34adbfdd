"""Session logins through the bot, on a real Synapse."""

from __future__ import annotations

import re
from typing import Any

from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.types import EventID, RoomCreatePreset, RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import Config
from tests.integration.conftest import MatrixUsers, messages_from, wait_for
from tests.integration.helpers import (
    bot_says,
    has_member,
    is_redacted,
    matrix_event,
    open_management_room,
)
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
    phrase = await bot_says(gina, room_id, bot, f"Recovery phrase of `{session_id}`")
    assert len(re.search(r":\s+`([a-z ]+)`", phrase).group(1).split()) == 13  # type: ignore[union-attr]
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


async def test_a_command_after_login_runs_and_is_not_taken_for_the_phrase(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    kim = await matrix_users.new("kim")
    room_id = await open_management_room(kim, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    await kim.send_text(room_id, "login")
    await bot_says(kim, room_id, bot, "recovery phrase as your next message")
    whoami = await kim.send_text(room_id, "whoami")
    await bot_says(kim, room_id, bot, "You have no Session login")
    await bot_says(kim, room_id, bot, "stopped waiting for your recovery phrase")
    assert not await is_redacted(kim, room_id, whoami)
    assert all("Login failed" not in b for b in await messages_from(kim, room_id, bot))


async def phrase_message(user: Client, room_id: RoomID, bot: str) -> Any:
    """The bot's message that shows a new recovery phrase."""

    def match(event: Any) -> bool:
        body = getattr(event.content, "body", None) or ""
        return str(event.sender) == bot and body.startswith("Recovery phrase of")

    return await matrix_event(user, room_id, "the message with the new phrase", match)


async def content_of(user: Client, room_id: RoomID, event_id: str) -> dict[str, Any]:
    """The event's content as the homeserver gives it to ``user``."""
    raw = await user.api.request(Method.GET, Path.v3.rooms[room_id].event[EventID(event_id)])
    return dict(raw["content"])


def shown_phrase(content: dict[str, Any]) -> str:
    return re.search(r":\s+`([a-z ]+)`", content["body"]).group(1)  # type: ignore[union-attr]


async def test_new_phrase_is_removed_once_the_user_saved_it(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    ivy = await matrix_users.new("ivy")
    room_id = await open_management_room(ivy, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    await ivy.send_text(room_id, "login new")
    await bot_says(ivy, room_id, bot, "send `saved` and I will delete that message")
    shown = await phrase_message(ivy, room_id, bot)
    phrase = shown_phrase(await content_of(ivy, room_id, shown.event_id))
    (login,) = await running_bridge.logins.logins_of(str(ivy.mxid))
    assert login.identity.phrase == phrase

    await ivy.send_text(room_id, "saved")
    await bot_says(ivy, room_id, bot, "I deleted the message with your recovery phrase")
    assert await is_redacted(ivy, room_id, shown.event_id)
    assert await content_of(ivy, room_id, shown.event_id) == {}
    assert await running_bridge.repos.expiring.list_all() == []
    # The login stays; only the message is gone.
    await ivy.send_text(room_id, "whoami")
    await bot_says(ivy, room_id, bot, f"- `{login.session_id}`")


async def test_new_phrase_is_removed_after_the_timeout(
    bridge_config: Config, matrix_users: MatrixUsers
) -> None:
    bridge_config.bridge.phrase_message_timeout = 1.0
    app = BridgeApp(bridge_config)
    await app.start()
    try:
        bot = bridge_config.bot_mxid
        jack = await matrix_users.new("jack")
        room_id = await open_management_room(jack, bot, RoomCreatePreset.TRUSTED_PRIVATE)
        await jack.send_text(room_id, "login new")
        shown = await phrase_message(jack, room_id, bot)
        await wait_for(
            lambda: is_redacted(jack, room_id, shown.event_id), "the phrase message to expire"
        )
        assert await content_of(jack, room_id, shown.event_id) == {}
        await bot_says(jack, room_id, bot, "its time was up")
    finally:
        await app.stop()


async def test_the_deadline_of_a_new_phrase_survives_a_restart(
    bridge_config: Config, matrix_users: MatrixUsers
) -> None:
    bridge_config.bridge.phrase_message_timeout = 6.0
    bot = bridge_config.bot_mxid
    first = BridgeApp(bridge_config)
    await first.start()
    try:
        lea = await matrix_users.new("lea")
        room_id = await open_management_room(lea, bot, RoomCreatePreset.TRUSTED_PRIVATE)
        await lea.send_text(room_id, "login new")
        shown = await phrase_message(lea, room_id, bot)
    finally:
        await first.stop()
    # The first bridge stopped before the deadline: only the stored deadline can remove it.
    assert not await is_redacted(lea, room_id, shown.event_id)
    second = BridgeApp(bridge_config)
    await second.start()
    try:
        await wait_for(
            lambda: is_redacted(lea, room_id, shown.event_id), "the phrase message to expire"
        )
        assert await content_of(lea, room_id, shown.event_id) == {}
    finally:
        await second.stop()


async def test_a_phrase_pasted_without_login_is_removed_and_never_echoed(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    bot = running_bridge.config.bot_mxid
    ivy = await matrix_users.new("ivy")
    room_id = await open_management_room(ivy, bot, RoomCreatePreset.TRUSTED_PRIVATE)
    words = CASE["phrase"].split()
    # A mistyped phrase (last word swapped, checksum wrong) is a secret all the same.
    mistyped = " ".join([*words[:-1], words[0]])
    for text in (CASE["phrase"], mistyped):
        pasted = await ivy.send_text(room_id, text)
        await wait_for(lambda e=pasted: is_redacted(ivy, room_id, e), "the pasted phrase removed")

    async def both_answered() -> list[str] | None:
        answers = await messages_from(ivy, room_id, bot)
        hits = sum("looks like a Session recovery phrase" in a for a in answers)
        return answers if hits == 2 else None

    answers = await wait_for(both_answered, "an answer to each pasted phrase")
    # Not one word of it came back (the old answer was "Unknown command `<first word>`").
    assert not any(word in answer for answer in answers for word in words if len(word) > 3)
    assert await running_bridge.repos.users.list_logins(str(ivy.mxid)) == []
