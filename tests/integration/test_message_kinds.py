"""Message kinds end to end, each checked from the receiving side: formatting and mentions in a
community room and in a direct chat (both ways), and, in a direct chat from Session to Matrix,
typing, read receipts and a disappearing-messages setting change.

Matrix is read by a real Matrix client on the test Synapse (room history and ``/sync``), Session
by a Session client on the devnet."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import (
    ContentURI,
    Format,
    MediaMessageEventContent,
    MessageType,
    RoomID,
    SyncToken,
    TextMessageEventContent,
    UserID,
)

from bridge.config import Config
from bridge.core.convert.mentions import ghost_mxid_pattern
from bridge.session.messages import Attachment, DisappearingSettings, VisibleMessage
from bridge.session.messages.model import ExpiryMode
from tests.images import tiny_png
from tests.integration.conftest import CommunityDevnet, DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bridged_room, matrix_event, session_sees, start_bridge
from tests.integration.test_direct_chats import body_is, joined_portal, session_gets

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 15.0

HTML = (
    "<b>bold</b> <i>italic</i> <del>strike</del> <code>x = 1</code> "
    '<a href="https://example.org/page">a link</a><ul><li>one</li><li>two</li></ul>'
)
PLAIN = "**bold** *italic* strike x = 1 a link\n* one\n* two"
SESSION_FORM = "*bold* _italic_ ~strike~ `x = 1` a link (https://example.org/page)\n- one\n- two"
URL = "https://example.org/a?b=1&c=2"
HOSTILE = f'<script>alert("x")</script> <b>not bold</b> & more, see {URL}'


def pill(mxid: str, name: str) -> str:
    return f'<a href="https://matrix.to/#/{mxid}">{name}</a>'


async def send_html(user: Client, room_id: RoomID, body: str, html: str) -> None:
    content = TextMessageEventContent(
        msgtype=MessageType.TEXT, body=body, format=Format.HTML, formatted_body=html
    )
    await user.send_message(room_id, content)


def raw(event: Any) -> dict[str, Any]:
    return dict(event.content.serialize())


def assert_safe_html(content: dict[str, Any], text: str) -> None:
    """``body`` is the Session text; ``formatted_body`` escapes all of it and links the URL."""
    assert content["body"] == text
    assert content["format"] == "org.matrix.custom.html"
    formatted = content["formatted_body"]
    assert "<script" not in formatted and "<b>" not in formatted
    assert "&lt;script&gt;" in formatted and "&lt;b&gt;not bold&lt;/b&gt;" in formatted
    escaped = URL.replace("&", "&amp;")
    assert f'<a href="{escaped}">{escaped}</a>' in formatted
    # Nothing but the link is markup.
    assert re.sub(r"<a href=\"[^\"<>]*\">[^<>]*</a>", "", formatted).count("<") == 0


async def assert_all_have_mentions(user: Client, room_id: RoomID, ours: set[str]) -> None:
    """Every message the bridge (bot or ghost) sent to the room carries ``m.mentions``."""
    sent = [
        raw(e)
        for e in await room_events(user, str(room_id))
        if str(e.type) == "m.room.message" and str(e.sender) not in ours
    ]
    assert len(sent) >= 3
    missing = [c.get("body") for c in sent if "m.mentions" not in c]
    assert not missing, f"messages without m.mentions: {missing}"


async def sync_ephemeral(
    user: Client, room_id: RoomID, what: str, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first ephemeral event of the room, seen through ``/sync``, that ``match`` accepts."""
    since: list[SyncToken | None] = [None]

    async def find() -> dict[str, Any] | None:
        response = await user.sync(since=since[0], timeout=0)
        since[0] = SyncToken(response["next_batch"])
        room = response.get("rooms", {}).get("join", {}).get(str(room_id), {})
        events = room.get("ephemeral", {}).get("events", [])
        return next((e for e in events if match(e)), None)

    return await wait_for(find, what, TIMEOUT)


# --- community rooms -------------------------------------------------------------------------


async def test_community_formatting_and_mentions_both_ways(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    bridge_config.session.file_server = devnet.servers.file_server_url
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, devnet.url)
        room = devnet.room
        await app.logins.create_new(str(alice.mxid))
        sam, bob = await devnet.member(), await devnet.member()
        ghosts = ghost_mxid_pattern(
            app.config.bridge.username_template, app.config.homeserver.domain
        )

        # Matrix HTML -> Session text conventions.
        await send_html(alice, room_id, PLAIN, HTML)
        seen = await session_sees(sam, room, "^\\*bold\\*")
        assert seen.content.body == SESSION_FORM  # type: ignore[union-attr]

        # Session text that looks like HTML -> escaped, the URL clickable; plain -> no HTML.
        await sam.post(room, VisibleMessage(body=HOSTILE))
        hostile = await matrix_event(alice, room_id, "the HTML-looking text", body_is(HOSTILE))
        assert_safe_html(raw(hostile), HOSTILE)
        assert raw(hostile)["m.mentions"] == {}
        await sam.post(room, VisibleMessage(body="just plain words"))
        plain = await matrix_event(alice, room_id, "the plain text", body_is("just plain words"))
        assert "formatted_body" not in raw(plain) and raw(plain)["m.mentions"] == {}
        sam_ghost = str(plain.sender)
        sam_match = ghosts.fullmatch(sam_ghost)
        assert sam_match is not None
        sam_id = sam_match.group("session_id")

        # A Session mention of Bob -> a pill of Bob's ghost, in m.mentions.
        await bob.post(room, VisibleMessage(body="bob is here"))
        bob_event = await matrix_event(alice, room_id, "Bob's post", body_is("bob is here"))
        bob_ghost = str(bob_event.sender)
        bob_match = ghosts.fullmatch(bob_ghost)
        assert bob_match is not None
        bob_id = bob_match.group("session_id")
        await sam.post(room, VisibleMessage(body=f"hello @{bob_id} there"))

        def mentions_bob(event: Any) -> bool:
            return str(event.type) == "m.room.message" and "hello" in raw(event).get("body", "")

        mention = raw(await matrix_event(alice, room_id, "the mention", mentions_bob))
        assert f'<a href="https://matrix.to/#/{bob_ghost}">' in mention["formatted_body"]
        assert mention["m.mentions"] == {"user_ids": [bob_ghost]}
        # The pill shows the name Bob's ghost has on Matrix, not a piece of his id.
        bob_name = (await alice.get_displayname(UserID(bob_ghost))) or ""
        assert f">{bob_name}</a>" in mention["formatted_body"]
        assert mention["body"] == f"hello {bob_name} there"

        # A Matrix pill of Sam's ghost -> @<sam's blinded id> in the Session text.
        await send_html(alice, room_id, "Sam: look", f"{pill(sam_ghost, 'Sam')}: look")
        pilled = await session_sees(sam, room, "look$")
        assert pilled.content.body == f"@{sam_id}: look"  # type: ignore[union-attr]

        await assert_all_have_mentions(alice, room_id, {str(alice.mxid)})
    finally:
        await app.stop()


# --- direct chats ----------------------------------------------------------------------------


async def test_direct_chat_formatting_and_mentions_both_ways(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    sam, inbox = await dm_env.session_user("Sam")
    tom, _ = await dm_env.session_user("Tom")
    sam_id, tom_id = sam.session_id.value, tom.session_id.value
    tom_ghost = dm_env.app.ghosts.mxid_for(tom_id)

    # Session text that looks like HTML -> escaped, the URL clickable; plain -> no HTML.
    await sam.send_text(ours, HOSTILE)
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    hostile = await matrix_event(alice, room_id, "the HTML-looking text", body_is(HOSTILE))
    assert_safe_html(raw(hostile), HOSTILE)
    await sam.send_text(ours, "just plain words")
    plain = await matrix_event(alice, room_id, "the plain text", body_is("just plain words"))
    assert "formatted_body" not in raw(plain) and raw(plain)["m.mentions"] == {}

    # Matrix HTML -> Session text conventions.
    await send_html(alice, room_id, PLAIN, HTML)
    got = await session_gets(inbox, "the formatted text", lambda c: getattr(c, "body", None))
    assert got.content.body == SESSION_FORM

    # A Session mention of Tom -> a pill of Tom's ghost, in m.mentions.
    await sam.send_text(ours, f"ask @{tom_id} about it")

    def mentions_tom(event: Any) -> bool:
        return str(event.type) == "m.room.message" and "ask" in raw(event).get("body", "")

    mention = raw(await matrix_event(alice, room_id, "the mention", mentions_tom))
    assert f'<a href="https://matrix.to/#/{tom_ghost}">' in mention["formatted_body"]
    assert mention["m.mentions"] == {"user_ids": [tom_ghost]}

    # A Matrix pill of Tom's ghost -> @<tom's id> in the Session text.
    await send_html(alice, room_id, "Tom: knows", f"{pill(tom_ghost, 'Tom')}: knows")
    pilled = await session_gets(
        inbox, "the pill", lambda c: (getattr(c, "body", None) or "").endswith("knows")
    )
    assert pilled.content.body == f"@{tom_id}: knows"

    await assert_all_have_mentions(alice, room_id, {str(alice.mxid)})


async def test_direct_chat_typing_receipts_and_disappearing_settings_reach_matrix(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    sam, inbox = await dm_env.session_user("Sam")
    sam_id = sam.session_id.value
    ghost = dm_env.app.ghosts.mxid_for(sam_id)
    await sam.send_text(ours, "hello")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    await matrix_event(alice, room_id, "Sam's message", body_is("hello"))

    # Typing in Session -> m.typing of Sam's ghost; stopping clears it.
    await sam.send_typing(ours, True)

    def typing(users: bool) -> Callable[[dict[str, Any]], bool]:
        def match(event: dict[str, Any]) -> bool:
            ids = event.get("content", {}).get("user_ids", [])
            return event.get("type") == "m.typing" and (ghost in ids) == users

        return match

    await sync_ephemeral(alice, room_id, "Sam's ghost to type", typing(True))
    await sam.send_typing(ours, False)
    await sync_ephemeral(alice, room_id, "Sam's ghost to stop typing", typing(False))

    # A read receipt in Session -> a receipt of Sam's ghost on alice's event.
    event_id = await alice.send_text(room_id, "read me")
    read_me = await session_gets(
        inbox, "alice's message", lambda c: getattr(c, "body", None) == "read me"
    )
    await sam.send_read_receipt(ours, [read_me.timestamp])

    def receipt(event: dict[str, Any]) -> bool:
        content = event.get("content", {})
        readers = content.get(str(event_id), {}).get("m.read", {})
        return event.get("type") == "m.receipt" and ghost in readers

    await sync_ephemeral(alice, room_id, "Sam's ghost's read receipt", receipt)

    # A disappearing-messages setting change -> an m.notice of Sam's ghost.
    setting = DisappearingSettings(mode=ExpiryMode.DELETE_AFTER_SEND, timer_seconds=3600)
    await sam.send_message(ours, setting)

    def notice(event: Any) -> bool:
        content = raw(event)
        return (
            str(event.type) == "m.room.message"
            and content.get("msgtype") == "m.notice"
            and "disappearing messages" in content.get("body", "")
        )

    shown = await matrix_event(alice, room_id, "the disappearing-messages notice", notice)
    assert str(shown.sender) == ghost
    name = await alice.get_displayname(UserID(ghost))
    assert name is not None and name.startswith("Sam")
    assert raw(shown)["body"] == f"{name} set disappearing messages to 1 hour after sending"
    assert raw(shown)["m.mentions"] == {}


# --- captions (MSC2530) ----------------------------------------------------------------------


async def count_bodies(user: Client, room_id: RoomID, text: str) -> int:
    return sum(1 for e in await room_events(user, str(room_id)) if body_is(text)(e))


async def test_community_captions_both_ways(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    bridge_config.session.file_server = devnet.servers.file_server_url
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        room = devnet.room
        await app.logins.create_new(str(alice.mxid))
        sam = await devnet.member()
        image = tiny_png()

        # A Session post with a picture and text: one m.image whose caption is the text.
        upload = await sam.upload(room, image, "dot.png")
        pointer = Attachment(
            url=upload.url, size=len(image), content_type="image/png", file_name="dot.png"
        )
        message = VisibleMessage(body="look at this", attachments=(pointer,))
        posted = await sam.post(room, message, files=[upload.id])
        shown = raw(await matrix_event(alice, room_id, "the picture", body_is("look at this")))
        assert (shown["msgtype"], shown["filename"]) == ("m.image", "dot.png")
        assert await alice.download_media(ContentURI(shown["url"])) == image
        await sam.post(room, VisibleMessage(body="next"))
        await matrix_event(alice, room_id, "the next post", body_is("next"))
        assert await count_bodies(alice, room_id, "look at this") == 1

        # The caption edited on Session: the picture's caption is edited on Matrix.
        edited = VisibleMessage(body="look at that", attachments=(pointer,))
        await sam.edit(room, posted.id, edited, files=[upload.id])

        def caption_edit(event: Any) -> bool:
            return raw(event).get("m.new_content", {}).get("body") == "look at that"

        new = raw(await matrix_event(alice, room_id, "the caption edit", caption_edit))
        assert new["m.new_content"]["msgtype"] == "m.image"
        assert (new["m.new_content"]["url"], new["m.new_content"]["filename"]) == (
            shown["url"],
            "dot.png",
        )

        # Matrix -> Session: an image with a caption is posted with the caption as its text.
        mxc = await alice.upload_media(image, mime_type="image/png", filename="mine.png")
        media = MediaMessageEventContent(
            msgtype=MessageType.IMAGE, body="my caption", url=mxc, filename="mine.png"
        )
        media["info"] = {"mimetype": "image/png", "size": len(image)}
        await alice.send_message(room_id, media)
        seen = await session_sees(sam, room, "^my caption$")
        assert isinstance(seen.content, VisibleMessage)
        assert [a.file_name for a in seen.content.attachments] == ["mine.png"]
    finally:
        await app.stop()


async def test_direct_chat_captions_both_ways(dm_env: DmEnv, matrix_users: MatrixUsers) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    sam, inbox = await dm_env.session_user("Sam")
    image = tiny_png()

    # Text and a picture in one Session message: one m.image whose caption is the text.
    pointer = await sam.upload_attachment(image, "dot.png", "image/png")
    await sam.send_text(ours, "look at this", attachments=(pointer,))
    room_id = await joined_portal(dm_env, alice, ours, sam.session_id.value)
    shown = raw(await matrix_event(alice, room_id, "the picture", body_is("look at this")))
    assert (shown["msgtype"], shown["filename"]) == ("m.image", "dot.png")
    assert await alice.download_media(ContentURI(shown["url"])) == image
    # The Session apps' own way, the caption also in the attachment: one event too.
    await sam.send_attachment(ours, image, "pixel.png", "image/png", caption="a pixel")
    pixel = raw(await matrix_event(alice, room_id, "the pixel", body_is("a pixel")))
    assert (pixel["msgtype"], pixel["filename"]) == ("m.image", "pixel.png")
    await sam.send_text(ours, "next")
    await matrix_event(alice, room_id, "the next message", body_is("next"))
    assert await count_bodies(alice, room_id, "look at this") == 1
    assert await count_bodies(alice, room_id, "a pixel") == 1

    # Matrix -> Session: an image with a caption arrives with the caption as its text.
    mxc = await alice.upload_media(image, mime_type="image/png", filename="mine.png")
    media = MediaMessageEventContent(
        msgtype=MessageType.IMAGE, body="my caption", url=mxc, filename="mine.png"
    )
    media["info"] = {"mimetype": "image/png", "size": len(image)}
    await alice.send_message(room_id, media)
    got = await session_gets(
        inbox, "the captioned picture", lambda c: getattr(c, "body", None) == "my caption"
    )
    assert [a.file_name for a in got.content.attachments] == ["mine.png"]
    assert await sam.download_attachment(got.content.attachments[0]) == image
