"""Community blinded DMs, edits shown to Session apps, and the backfill of a busy room, each
checked from the receiving side (README, Community direct messages; Edits; Backfill)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import EventType, RoomID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.core.community import boxes as boxes_module
from bridge.core.community.dm_keys import dm_portal_key
from bridge.db.records import PortalKind
from bridge.session.blinding import blind15_id
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage, content_to_proto
from bridge.session.padding import pad_message
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.posts import sign_post
from bridge.session.sogs.urls import parse_community_url
from tests.integration.conftest import CommunityDevnet, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bridged_room, matrix_sees, session_sees, start_bridge


async def launch(config: Config, devnet: CommunityDevnet, admin: Client) -> BridgeApp:
    config.session.file_server = devnet.servers.file_server_url
    return await start_bridge(config, str(admin.mxid))


async def dm_room(app: BridgeApp, devnet: CommunityDevnet, ours: str, peer: str) -> str:
    """The Matrix room of the DM portal (ours, peer), once the bridge made it."""
    key = dm_portal_key(parse_community_url(devnet.url).server, ours, peer)

    async def find() -> str | None:
        portal = await app.repos.portals.get_by_key(PortalKind.COMMUNITY, key)
        return portal.mxid if portal is not None else None

    return await wait_for(find, f"the DM portal {ours[:8]}/{peer[:8]}")


async def bodies(user: Client, room_id: str, pattern: str) -> list[str]:
    found = []
    for event in await room_events(user, room_id):
        body = getattr(event.content, "body", None)
        if str(event.type) == "m.room.message" and body and re.search(pattern, body):
            found.append(body)
    return found


async def inbox_text(client: CommunityClient, pattern: str) -> Any:
    """The first entry of ``client``'s inbox whose text matches (its cursor is committed)."""

    async def find() -> Any:
        result = await client.poll()
        await client.commit_boxes(result.inbox_id, result.outbox_id)
        for entry in result.inbox:
            content = entry.content
            if isinstance(content, VisibleMessage) and re.search(pattern, content.body or ""):
                return entry
        return None

    return await wait_for(find, f"the inbox to get {pattern!r}")


async def test_blinded_dms_reach_matrix_once_and_replies_reach_the_inbox(
    bridge_config: Config,
    matrix_users: MatrixUsers,
    devnet: CommunityDevnet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(boxes_module, "READERS_REFRESH_S", 0.5)
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    bot = bridge_config.bot_mxid
    pubkey = devnet.servers.community.pubkey
    try:
        await bridged_room(alice, bot, devnet.url)
        login = await app.logins.create_new(str(alice.mxid))
        login_blinded = blind15_id(login.identity, pubkey)
        bot_identity = (await app.logins.bot_login()).identity
        bot_blinded = blind15_id(bot_identity, pubkey)
        users = devnet.servers.community.state.users
        # Both identities read their inbox, so the server knows them (pysogs: 404 before).

        async def both_known() -> bool:
            return login_blinded.value in users and bot_blinded.value in users

        await wait_for(both_known, "both identities to read their community inbox")
        sam = await devnet.member()
        await sam.send_inbox(login_blinded, VisibleMessage(body="hello login"))
        await sam.send_inbox(bot_blinded, VisibleMessage(body="hello bot"))

        login_room = await dm_room(app, devnet, login.session_id, sam.blinded_id.value)
        bot_room = await dm_room(app, devnet, bot_identity.session_id.value, sam.blinded_id.value)
        for room in (login_room, bot_room):  # alice owns the login and is the bridge's admin
            await alice.join_room(RoomID(room))
        await matrix_sees(alice, RoomID(login_room), "^hello login$")
        await matrix_sees(alice, RoomID(bot_room), "^hello bot$")

        # A reply from Matrix reaches sam's inbox from the login's own Session account.
        await alice.send_text(RoomID(login_room), "hi sam")
        entry = await inbox_text(sam, "^hi sam$")
        assert entry.sender == login.identity.session_id
        assert entry.sender_blinded == login_blinded
    finally:
        await app.stop()

    app = await launch(bridge_config, devnet, alice)  # the same database: a restart
    try:
        await sam.send_inbox(login_blinded, VisibleMessage(body="after the restart"))
        await matrix_sees(alice, RoomID(login_room), "^after the restart$")
        await sam.send_inbox(bot_blinded, VisibleMessage(body="bot after the restart"))
        await matrix_sees(alice, RoomID(bot_room), "^bot after the restart$")
        assert await bodies(alice, login_room, "^hello login$") == ["hello login"]
        assert await bodies(alice, bot_room, "^hello bot$") == ["hello bot"]
        # the reply was not shown again as "sent from another device" (the outbox item)
        assert await bodies(alice, login_room, "hi sam") == ["hi sam"]
    finally:
        await app.stop()


async def test_a_matrix_edit_is_a_marked_new_post_quoting_the_original(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        login = await app.logins.create_new(str(alice.mxid))
        sam = await devnet.member()
        original = await alice.send_text(room_id, "typo hree")
        posted = await session_sees(sam, devnet.room, "^typo hree$")
        assert isinstance(posted.content, VisibleMessage)
        # DMs to the login reach Matrix: the apps may offer to message it
        assert posted.content.blocks_community_message_requests is False
        edit = {
            "msgtype": "m.text",
            "body": "* typo here",
            "m.new_content": {"msgtype": "m.text", "body": "typo here"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        }
        await alice.send_message_event(room_id, EventType.ROOM_MESSAGE, edit)
        marked = await session_sees(sam, devnet.room, "^✏️ typo here$")
        assert marked.id != posted.id  # a new post: desktop keeps a post's first text
        content = marked.content
        assert isinstance(content, VisibleMessage) and content.quote is not None
        assert content.quote.timestamp == posted.content.sig_timestamp
        author = blind15_id(login.identity, devnet.servers.community.pubkey).value
        assert content.quote.author == author == str(marked.author)
        await session_sees(sam, devnet.room, "^typo here$")  # the server-side edit too
    finally:
        await app.stop()


async def test_a_busy_room_brings_over_only_its_newest_posts_in_order_with_their_times(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    community = devnet.servers.community
    room = community.state.room(devnet.room)
    sam = Identity.generate()
    author = blind15_id(sam, community.pubkey).value
    base = community.clock() - 86_400.0
    for n in range(500):  # written a day ago, one second apart
        data = pad_message(content_to_proto(VisibleMessage(body=f"old {n}", sig_timestamp=n)))
        post = community.state.add_post(room, author, data, sign_post(sam, community.pubkey, data))
        post.posted = base + n
    bridge_config.communities.backfill_messages = 30
    alice = await matrix_users.new("alice")
    app = await launch(bridge_config, devnet, alice)
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        await matrix_sees(alice, room_id, "^old 499$")
        member = await devnet.member()
        await member.post(devnet.room, VisibleMessage(body="live after the backfill"))
        await matrix_sees(alice, room_id, "^live after the backfill$")
        events = [
            e
            for e in await room_events(alice, str(room_id))
            if str(e.type) == "m.room.message" and str(e.content.body).startswith("old ")
        ]
        assert [e.content.body for e in events] == [f"old {n}" for n in range(470, 500)]
        assert [e.timestamp for e in events] == [int((base + n) * 1000) for n in range(470, 500)]
    finally:
        await app.stop()
