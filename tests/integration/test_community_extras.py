"""Community portals beyond text: reactions, edits, deletions, files and room info, each
checked from the receiving side (a Matrix test client, or a Session client on the devnet)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.errors import MNotFound
from mautrix.types import (
    ContentURI,
    EventType,
    MediaMessageEventContent,
    MessageType,
    RoomID,
)

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.session.blinding import blind15_id
from bridge.session.dm_media import upload_attachment
from bridge.session.files import FileServerClient
from bridge.session.messages import Attachment, VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import CommunityMessage, ReactionSummary
from tests.images import tiny_png
from tests.integration.conftest import CommunityDevnet, MatrixUsers, room_events, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    is_redacted,
    matrix_sees,
    session_sees,
    start_bridge,
)


async def launch(config: Config, devnet: CommunityDevnet, admin: Client) -> BridgeApp:
    config.session.file_server = devnet.servers.file_server_url
    return await start_bridge(config, str(admin.mxid))


async def session_reactions(
    client: CommunityClient, room: str, message_id: int
) -> dict[str, ReactionSummary]:
    """The current reactions (with reactors) on a message, as a poll sees them."""
    result = await client.poll()
    found: dict[str, ReactionSummary] = {}
    for item in result.rooms[room].items:
        if item.id == message_id:
            found = {r.emoji: r for r in item.reactions}
    return found


async def session_post(client: CommunityClient, room: str, message_id: int) -> Any:
    for msg in await client.recent(room, 50):
        if msg.id == message_id:
            return msg
    return None


async def matrix_reaction(user: Client, room_id: RoomID, target: str, key: str) -> Any:
    async def find() -> Any:
        for event in await room_events(user, str(room_id)):
            if str(event.type) != "m.reaction":
                continue
            relates = event.content.serialize().get("m.relates_to", {})
            if relates.get("event_id") == target and relates.get("key") == key:
                return event
        return None

    return await wait_for(find, f"a {key} reaction on {target}")


async def test_reactions_edits_and_deletions_both_ways(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    bob = await matrix_users.new("bob")
    app = await launch(bridge_config, devnet, alice)
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, devnet.url)
        room = devnet.room
        login = await app.logins.create_new(str(alice.mxid))
        alice_session = blind15_id(login.identity, devnet.servers.community.pubkey).value
        sam = await devnet.member()

        # Session -> Matrix: Sam's reaction appears as his ghost's, and goes when he removes it.
        posted = await sam.post(room, VisibleMessage(body="react to me"))
        event = await matrix_sees(alice, room_id, "^react to me$")
        await sam.react(room, posted.id, "👍")
        reaction = await matrix_reaction(alice, room_id, str(event.event_id), "👍")
        assert str(reaction.sender) == f"@session_{sam.blinded_id.value}:localhost"
        await sam.unreact(room, posted.id, "👍")
        await wait_for(
            lambda: is_redacted(alice, room_id, str(reaction.event_id)), "the reaction to go"
        )

        # Matrix -> Session: alice reacts with her login, then takes it back.
        mine = await alice.react(room_id, event.event_id, "🎉")

        async def alice_reacted() -> bool:
            found = (await session_reactions(sam, room, posted.id)).get("🎉")
            return found is not None and alice_session in found.reactors

        await wait_for(alice_reacted, "alice's reaction on Session")
        await alice.redact(room_id, mine)

        async def no_reactions() -> bool:
            return not await session_reactions(sam, room, posted.id)

        await wait_for(no_reactions, "alice's reaction to be removed on Session")

        # A relayed user reacts through the bot's identity.
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.invite_user(room_id, bob.mxid)
        await bob.join_room(room_id)
        relayed = await bob.react(room_id, event.event_id, "🔥")
        bot_identity = (await app.logins.bot_login()).identity
        bot_session = blind15_id(bot_identity, devnet.servers.community.pubkey)

        async def bot_reacted() -> bool:
            found = (await session_reactions(sam, room, posted.id)).get("🔥")
            return found is not None and bot_session.value in found.reactors

        await wait_for(bot_reacted, "the relayed reaction on Session")
        await bob.redact(room_id, relayed)
        await wait_for(no_reactions, "the relayed reaction to be removed on Session")

        # Matrix edits and redactions of alice's own message follow on Session.
        own_event = await alice.send_text(room_id, "typo hree")
        own = await session_sees(sam, room, "^typo hree$")
        new = {"msgtype": "m.text", "body": "typo here"}
        edit = {
            "msgtype": "m.text",
            "body": "* typo here",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": own_event},
        }
        await alice.send_message_event(room_id, EventType.ROOM_MESSAGE, edit)
        await session_sees(sam, room, "^typo here$")
        await alice.redact(room_id, own_event)

        async def deleted() -> bool:
            return await session_post(sam, room, own.id) is None

        await wait_for(deleted, "alice's message to be deleted on Session")

        # A moderator cannot delete someone else's Session message.
        await alice.redact(room_id, event.event_id)
        await bot_says(alice, room_id, bot, "Only the author can delete a message on Session")
        assert await session_post(sam, room, posted.id) is not None

        # A Session deletion redacts the Matrix event.
        gone = await sam.post(room, VisibleMessage(body="short-lived"))
        short = await matrix_sees(alice, room_id, "^short-lived$")
        await sam.delete(room, gone.id)
        await wait_for(
            lambda: is_redacted(alice, room_id, str(short.event_id)), "the deletion on Matrix"
        )
    finally:
        await app.stop()


async def test_files_both_ways(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, devnet.url)
        room = devnet.room
        await app.logins.create_new(str(alice.mxid))
        sam = await devnet.member()
        image = tiny_png()

        # Session -> Matrix: a room file (unencrypted, §5.8) becomes an m.image with its info,
        # the post's text its caption (one event: body the caption, filename the file's name).
        upload = await sam.upload(room, image, "dot.png")
        pointer = Attachment(
            url=upload.url, size=len(image), content_type="image/png", file_name="dot.png"
        )
        await sam.post(
            room, VisibleMessage(body="a picture", attachments=(pointer,)), files=[upload.id]
        )
        picture = await matrix_sees(alice, room_id, "^a picture$")
        content = picture.content.serialize()
        assert content["msgtype"] == "m.image" and content["filename"] == "dot.png"
        assert content["info"] == {"mimetype": "image/png", "size": len(image), "w": 1, "h": 1}
        assert content["m.mentions"] == {}
        assert await alice.download_media(ContentURI(content["url"])) == image

        # A file-server attachment (encrypted, §7.2) is decrypted on the way.
        files = FileServerClient(devnet.http, devnet.servers.file_server_url)
        document = b"%PDF-1.4 not really a pdf" * 40
        encrypted = await upload_attachment(files, document, "notes.pdf", "application/pdf")
        await sam.post(room, VisibleMessage(attachments=(encrypted,)))
        notes = await matrix_sees(alice, room_id, "^notes.pdf$")
        assert notes.content.serialize()["msgtype"] == "m.file"
        assert await alice.download_media(notes.content.url) == document

        # Matrix -> Session: alice's image is uploaded to the room and posted with its file id.
        mxc = await alice.upload_media(image, mime_type="image/png", filename="mine.png")
        media = MediaMessageEventContent(
            msgtype=MessageType.IMAGE, body="mine.png", url=mxc, filename="mine.png"
        )
        media["info"] = {"mimetype": "image/png", "size": len(image), "w": 1, "h": 1}
        await alice.send_message(room_id, media)

        async def posted_file() -> CommunityMessage | None:
            for msg in await sam.recent(room, 50):
                content = msg.content
                attachments = content.attachments if isinstance(content, VisibleMessage) else ()
                if attachments and attachments[0].file_name == "mine.png":
                    return msg
            return None

        seen = await wait_for(posted_file, "alice's image on Session")
        assert isinstance(seen.content, VisibleMessage)
        sent = seen.content.attachments[0]
        assert sent.content_type == "image/png" and sent.size == len(image)
        file_id = int((sent.url or "").rsplit("/", 1)[1])
        assert await sam.download(room, file_id) == image

        # Too large for Session: refused with a notice before anything is downloaded.
        big = MediaMessageEventContent(
            msgtype=MessageType.FILE, body="huge.bin", url=mxc, filename="huge.bin"
        )
        big["info"] = {"mimetype": "application/octet-stream", "size": 11_000_000}
        await alice.send_message(room_id, big)
        await bot_says(alice, room_id, bot, r"Session accepts files up to 10\.0 MB")
    finally:
        await app.stop()


async def test_room_info_follows_the_community(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        state = devnet.servers.community.state

        async def name_is(expected: str) -> bool:
            content = await alice.get_state_event(room_id, EventType.ROOM_NAME)
            return bool(content.name == expected)

        await wait_for(lambda: name_is(state.rooms[devnet.room].name), "the community's name")
        state.update_room(
            devnet.room, name="Renamed room", description="All about it", image=tiny_png()
        )
        await wait_for(lambda: name_is("Renamed room"), "the new name")

        async def topic_and_avatar() -> bool:
            try:
                topic = await alice.get_state_event(room_id, EventType.ROOM_TOPIC)
                avatar = await alice.get_state_event(room_id, EventType.ROOM_AVATAR)
            except MNotFound:  # not set yet
                return False
            return topic.topic == "All about it" and bool(avatar.url)

        await wait_for(topic_and_avatar, "the new topic and avatar")
        avatar = await alice.get_state_event(room_id, EventType.ROOM_AVATAR)
        assert await alice.download_media(avatar.url) == tiny_png()
    finally:
        await app.stop()


async def test_whispers_never_reach_the_public_room(
    bridge_config: Config,
    matrix_users: MatrixUsers,
    devnet: CommunityDevnet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.core.community.inbound")
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        room, server = devnet.room, devnet.servers.community
        bot = blind15_id((await app.logins.bot_login()).identity, server.pubkey).value
        mod = await devnet.member()
        # Both moderators: the bot sees the whispers to it and those to the moderators.
        server.add_moderator(room, mod.blinded_id.value)
        server.add_moderator(room, bot)
        await mod.post(room, VisibleMessage(body="secret for the bot"), whisper_to=bot)
        await mod.post(room, VisibleMessage(body="secret for the mods"), whisper_mods=True)
        await mod.post(room, VisibleMessage(body="public after the whispers"))
        await matrix_sees(alice, room_id, "^public after the whispers$")

        bodies = [
            str(e.content.serialize().get("body")) for e in await room_events(alice, room_id)
        ]
        assert not [b for b in bodies if "secret" in b]
        # one line per whisper (a room read again after a transient error logs it again)
        lines = {r.getMessage() for r in caplog.records if "whisper" in r.getMessage()}
        assert len(lines) == 2, lines
        assert not [line for line in lines if "secret" in line]
    finally:
        await app.stop()
