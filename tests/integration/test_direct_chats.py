"""Direct chats bridged both ways: real Synapse, real PostgreSQL/SQLite, the devnet's storage
nodes and file server, Session users made with our own Session client and with the
independent ``session-python``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import (
    MediaMessageEventContent,
    Membership,
    MessageType,
    RoomCreatePreset,
    RoomID,
    SyncToken,
    TextMessageEventContent,
    UserID,
)

from bridge.core.direct.chats import direct_key
from bridge.core.direct.rejoin import owner_membership
from bridge.db.records import PortalKind
from bridge.session.keys import Identity
from bridge.session.messages import (
    MessageRequestResponse,
    Quote,
    Reaction,
    ReadReceipt,
    Typing,
    Unsend,
)
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, has_member, matrix_event
from tests.sessionnet.dm_setup import Inbox
from tests.sessionnet.test_interop_session_python import sp_session

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 15.0


def body_is(text: str) -> Any:
    def match(event: Any) -> bool:
        return str(event.type) == "m.room.message" and getattr(event.content, "body", None) == text

    return match


async def session_gets(inbox: Inbox, what: str, match: Any) -> Any:
    async def find() -> Any:
        return next((e for e in inbox.messages if match(e.content)), None)

    return await wait_for(find, f"Session to get {what}", TIMEOUT)


async def joined_portal(env: DmEnv, user: Client, ours: str, peer: str) -> RoomID:
    room_id = await env.portal_room(ours, peer)

    async def join() -> bool:
        try:
            await user.join_room(room_id)
        except Exception:  # the invite may not be there yet
            return False
        return True

    await wait_for(join, "alice to join the portal", TIMEOUT)
    return room_id


async def test_session_user_messages_a_logged_in_matrix_user(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, sam_inbox = await dm_env.session_user("Sam")
    sam_id = sam.session_id.value

    first = await sam.send_text(login.session_id, "hello from Session")
    room_id = await joined_portal(dm_env, alice, login.session_id, sam_id)
    ghost = dm_env.app.ghosts.mxid_for(sam_id)
    hello = await matrix_event(alice, room_id, "the first message", body_is("hello from Session"))
    assert str(hello.sender) == ghost
    assert hello.content["m.mentions"] == {}
    members = await alice.get_joined_members(room_id)
    assert UserID(ghost) in members and UserID(dm_env.app.config.bot_mxid) in members
    # Not accepted on arrival (docs/user-configs.md §4): only Alice's answer accepts it, so
    # that Sam then sees our replies as a normal chat.
    assert not any(isinstance(e.content, MessageRequestResponse) for e in sam_inbox.messages)
    await alice.send_text(room_id, "hi Sam")
    await session_gets(
        sam_inbox, "the acceptance", lambda c: isinstance(c, MessageRequestResponse)
    )

    reply = await sam.send_text(login.session_id, "a reply", quote=Quote(first.timestamp, sam_id))
    event = await matrix_event(alice, room_id, "the reply", body_is("a reply"))
    relates = event.content.serialize()["m.relates_to"]
    assert relates["m.in_reply_to"]["event_id"] == str(hello.event_id)

    await sam.send_reaction(login.session_id, sam_id, first.timestamp, "👍")

    def is_reaction(e: Any) -> bool:
        return str(e.type) == "m.reaction" and e.content.relates_to.key == "👍"

    reaction = await matrix_event(alice, room_id, "the reaction", is_reaction)
    assert str(reaction.content.relates_to.event_id) == str(hello.event_id)

    png = tiny_png()
    await sam.send_attachment(login.session_id, png, "pixel.png", "image/png")

    def is_image(e: Any) -> bool:
        return (
            str(e.type) == "m.room.message"
            and getattr(e.content, "msgtype", None) == MessageType.IMAGE
        )

    image = await matrix_event(alice, room_id, "the image", is_image)
    assert image.content.body == "pixel.png" and image.content.info.mimetype == "image/png"
    assert await alice.download_media(image.content.url) == png

    await sam.send_unsend(login.session_id, reply.timestamp)

    async def reply_redacted() -> bool:
        events = await room_events(alice, str(room_id))
        found = next(e for e in events if str(e.event_id) == str(event.event_id))
        return "redacted_because" in (found.unsigned.serialize() if found.unsigned else {})

    await wait_for(reply_redacted, "the reply to be redacted", TIMEOUT)


async def test_matrix_user_answers_in_the_direct_chat(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, inbox = await dm_env.session_user("Sam")
    sam_id, ours = sam.session_id.value, login.session_id
    first = await sam.send_text(ours, "hi alice")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    hello = await matrix_event(alice, room_id, "Sam's message", body_is("hi alice"))

    text_id = await alice.send_text(room_id, "hi *Sam*", html="hi <b>Sam</b>")
    text = await session_gets(inbox, "the text", lambda c: getattr(c, "body", "") == "hi *Sam*")
    assert text.sender.value == ours

    reply = TextMessageEventContent(msgtype=MessageType.TEXT, body="answering you")
    reply.set_reply(hello.event_id)
    await alice.send_message(room_id, reply)
    quoted = await session_gets(
        inbox, "the reply", lambda c: getattr(c, "body", "") == "answering you"
    )
    assert quoted.content.quote is not None
    assert (quoted.content.quote.author, quoted.content.quote.timestamp) == (
        sam_id,
        first.timestamp,
    )

    await alice.react(room_id, hello.event_id, "🎉")
    reaction = await session_gets(inbox, "the reaction", lambda c: isinstance(c, Reaction))
    assert (reaction.content.target_author, reaction.content.target_timestamp) == (
        sam_id,
        first.timestamp,
    )

    edit = TextMessageEventContent(msgtype=MessageType.TEXT, body="hi Samuel")
    edit.set_edit(text_id)
    await alice.send_message(room_id, edit)
    edited = await session_gets(
        inbox, "the edit", lambda c: "hi Samuel" in (getattr(c, "body", "") or "")
    )
    assert edited.content.body.startswith("✏️")
    assert edited.content.quote is not None and edited.content.quote.timestamp == text.timestamp

    await alice.redact(room_id, text_id)
    unsend = await session_gets(inbox, "the unsend", lambda c: isinstance(c, Unsend))
    assert (unsend.content.target_author, unsend.content.target_timestamp) == (
        ours,
        text.timestamp,
    )

    data = b"some file contents " * 100
    mxc = await alice.upload_media(data, mime_type="text/plain", filename="notes.txt")
    file_content = MediaMessageEventContent(
        msgtype=MessageType.FILE, body="notes.txt", url=mxc, filename="notes.txt"
    )
    await alice.send_message(room_id, file_content)
    sent = await session_gets(inbox, "the file", lambda c: bool(getattr(c, "attachments", ())))
    (attachment,) = sent.content.attachments
    assert attachment.file_name == "notes.txt"
    # Not the default file server: its URLs name its Ed25519 key for Android (§2.6, §7.1).
    key = dm_env.world.files.server_pubkey
    assert key and attachment.url is not None and attachment.url.endswith(f"#p={key}")
    assert await sam.download_attachment(attachment) == data

    # Alice types, then reads Sam's message: Sam sees both.
    await alice.set_typing(room_id, 5000)
    typing = await session_gets(inbox, "the typing indicator", lambda c: isinstance(c, Typing))
    assert typing.content.started is True
    await alice.send_receipt(room_id, hello.event_id)
    receipt = await session_gets(inbox, "the read receipt", lambda c: isinstance(c, ReadReceipt))
    assert first.timestamp in receipt.content.timestamps


async def test_pm_and_inviting_a_ghost_start_direct_chats(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    bot = dm_env.app.config.bot_mxid
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, sam_inbox = await dm_env.session_user("Sam")
    tom, tom_inbox = await dm_env.session_user("Tom")

    # `pm` in a room with the bot.
    management = await alice.create_room(is_direct=True, invitees=[UserID(bot)])
    await wait_for(
        lambda: has_member(alice, management, bot), "the bot to join the management room"
    )
    await alice.send_text(management, "!session pm 05nothex")
    await bot_says(alice, management, bot, "is not a Session ID", TIMEOUT)
    await alice.send_text(management, f"!session pm {sam.session_id.value}")
    await bot_says(alice, management, bot, "direct chat with .* is ready", TIMEOUT)
    room_id = await joined_portal(dm_env, alice, login.session_id, sam.session_id.value)
    await alice.send_text(room_id, "hello Sam, from Matrix")
    got = await session_gets(
        sam_inbox, "the pm", lambda c: getattr(c, "body", "") == "hello Sam, from Matrix"
    )
    assert got.sender.value == login.session_id

    # Inviting Tom's ghost into a new room makes it the direct chat with Tom.
    tom_ghost = dm_env.app.ghosts.mxid_for(tom.session_id.value)
    invited = await alice.create_room(
        is_direct=True, invitees=[UserID(tom_ghost)], preset=RoomCreatePreset.TRUSTED_PRIVATE
    )
    await wait_for(lambda: has_member(alice, invited, tom_ghost), "Tom's ghost to join")
    assert await dm_env.portal_room(login.session_id, tom.session_id.value) == invited
    await alice.send_text(invited, "hello Tom")
    await session_gets(tom_inbox, "the message", lambda c: getattr(c, "body", "") == "hello Tom")
    # Tom answers in the same room.
    await tom.send_text(login.session_id, "hi back")
    await matrix_event(alice, invited, "Tom's answer", body_is("hi back"))


async def test_bot_identity_auto_replies(dm_env: DmEnv) -> None:
    bot_login = await dm_env.app.logins.bot_login()
    sam, inbox = await dm_env.session_user("Sam")
    await sam.send_text(bot_login.session_id, "hello?")
    answer = await session_gets(
        inbox, "the auto-reply", lambda c: "Session bridge" in (getattr(c, "body", "") or "")
    )
    assert answer.sender.value == bot_login.session_id
    assert f"pm {sam.session_id.value}" in answer.content.body


async def test_session_python_user_chats_with_a_bridged_user(
    dm_env: DmEnv, matrix_users: MatrixUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from session_python.polling import Poller as SpPoller

    assert dm_env.net.seed_http_url is not None
    alice = await matrix_users.new("alice")
    # session-python strips a leading 0x05 byte from a 32-byte key too (crypto.py
    # remove_prefix_if_needed), so it can neither write to nor read as an account whose key
    # starts with 05 (1 in 256): pick keys it handles.
    identity = Identity.generate()
    while identity.session_id.value.startswith("0505"):
        identity = Identity.generate()
    login = await dm_env.app.logins.login_with_phrase(str(alice.mxid), identity.phrase)
    sp = sp_session(monkeypatch, dm_env.net.seed_http_url)
    while sp.get_session_id().startswith("0505"):
        sp.close()
        sp = sp_session(monkeypatch, dm_env.net.seed_http_url)
    try:
        await asyncio.to_thread(sp.send_message, login.session_id, "hi from session-python")
        room_id = await joined_portal(dm_env, alice, login.session_id, sp.get_session_id())
        await matrix_event(alice, room_id, "the message", body_is("hi from session-python"))
        await alice.send_text(room_id, "hello independent client")
        poller = SpPoller(sp, namespaces=[0])
        received: list[dict[str, Any]] = []

        async def arrived() -> bool:
            received.extend(await asyncio.to_thread(poller.poll))
            return any(m.get("body") == "hello independent client" for m in received)

        await wait_for(arrived, "session-python to get the reply", TIMEOUT)
        reply = next(m for m in received if m.get("body") == "hello independent client")
        assert reply["from"] == login.session_id
    finally:
        sp.close()


async def test_an_encrypted_direct_chat_is_refused_with_a_reason(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    tom, _ = await dm_env.session_user("Tom")
    tom_ghost = dm_env.app.ghosts.mxid_for(tom.session_id.value)
    encryption = {
        "type": "m.room.encryption",
        "state_key": "",
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }
    room_id = await alice.create_room(
        is_direct=True, invitees=[UserID(tom_ghost)], initial_state=[encryption]
    )

    async def refused() -> bool:
        events = [
            (str(e.type), str(e.sender), e.content.serialize())
            for e in await room_events(alice, str(room_id))
        ]
        said = any(
            sender == tom_ghost and "does not work in encrypted rooms" in content.get("body", "")
            for kind, sender, content in events
        )
        left = any(
            kind == "m.room.member" and sender == tom_ghost and content["membership"] == "leave"
            for kind, sender, content in events
        )
        return said and left

    await wait_for(refused, "Tom's ghost to explain and leave")
    key = direct_key(login.session_id, tom.session_id.value)
    assert await dm_env.app.repos.portals.get_by_key(PortalKind.DIRECT, key) is None


async def invite_of(user: Client, room_id: RoomID) -> dict[str, Any]:
    """The content of ``user``'s invite to the room, once it is there (read with incremental
    syncs: Synapse answers a repeated initial sync from its cache for a while)."""
    since: list[SyncToken | None] = [None]

    async def find() -> dict[str, Any] | None:
        response = await user.sync(since=since[0], timeout=0)
        since[0] = SyncToken(response["next_batch"])
        invites = response.get("rooms", {}).get("invite", {})
        events = invites.get(str(room_id), {}).get("invite_state", {}).get("events", [])
        return next(
            (
                e["content"]
                for e in events
                if e.get("type") == "m.room.member" and e.get("state_key") == str(user.mxid)
            ),
            None,
        )

    return await wait_for(find, f"an invite to {room_id}", TIMEOUT)


async def test_a_direct_chat_invite_is_marked_direct(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, _ = await dm_env.session_user("Sam")
    await sam.send_text(login.session_id, "hello")
    room_id = await dm_env.portal_room(login.session_id, sam.session_id.value)
    # The room was created with is_direct, so the invite says so: a client accepting it
    # files the room under direct chats (it writes m.direct, the user's own account data).
    invite = await invite_of(alice, room_id)
    assert invite["membership"] == "invite" and invite["is_direct"] is True


async def test_a_new_message_after_the_user_left_the_chat_invites_them_back(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, _ = await dm_env.session_user("Sam")
    ours, sam_id = login.session_id, sam.session_id.value
    await sam.send_text(ours, "hello")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    await matrix_event(alice, room_id, "the first message", body_is("hello"))

    await alice.leave_room(room_id)
    # The bridge learns of the leave from the homeserver's next transaction; a Session message
    # that comes before it is bridged into the room as if she were still there.
    bot = dm_env.app.appservice.intent

    async def bridge_saw_her_leave() -> bool:
        membership = await owner_membership(bot, str(room_id), str(alice.mxid))
        return membership == Membership.LEAVE

    await wait_for(bridge_saw_her_leave, "the bridge to see alice leave")
    await sam.send_text(ours, "are you still there?")
    # Invited back into the same room, as a direct chat, by Sam's ghost.
    invite = await invite_of(alice, room_id)
    assert invite["is_direct"] is True
    await alice.join_room(room_id)
    await matrix_event(alice, room_id, "the new message", body_is("are you still there?"))
    await bot_says(alice, room_id, dm_env.app.config.bot_mxid, "You had left this chat", TIMEOUT)
    assert await dm_env.portal_room(ours, sam_id) == room_id
    # Once back, messages arrive as before, without another notice.
    await sam.send_text(ours, "good")
    await matrix_event(alice, room_id, "the next message", body_is("good"))
    notices = [
        e
        for e in await room_events(alice, str(room_id))
        if "You had left this chat" in str(getattr(e.content, "body", ""))
    ]
    assert len(notices) == 1
