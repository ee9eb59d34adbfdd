"""The security holes of issue #10, each attacked the way a person would: a Session user
pointing an attachment at the operator's network, a Matrix user without a permission level
talking through the relay, control characters and a forged sender from Matrix, and a debug log
read for secrets. Real Synapse, real PostgreSQL/SQLite, the devnet."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mautrix.types import EventType, MessageType, RoomID, TextMessageEventContent

from bridge.config import Config, load_config
from bridge.db.records import PortalKind
from bridge.session.keys import Identity
from bridge.session.messages import Attachment, VisibleMessage
from bridge.session.mnemonic import decode
from tests.integration.conftest import (
    CommunityDevnet,
    DmEnv,
    MatrixUsers,
    messages_from,
    room_events,
    wait_for,
)
from tests.integration.helpers import (
    BridgeProcess,
    bot_says,
    bridged_room,
    matrix_sees,
    open_management_room,
    session_sees,
    start_bridge,
    write_process_config,
)
from tests.integration.test_direct_chats import body_is, joined_portal, session_gets
from tests.sessionnet.extras import CommunityAndFiles, RequestCounter, serve

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@dataclass
class Inside:
    """An HTTP server inside the operator's network (on loopback), which records requests."""

    url: str = ""
    paths: list[str] = field(default_factory=list)


@pytest.fixture
async def inside() -> AsyncIterator[Inside]:
    found = Inside()

    async def handle(request: web.Request) -> web.Response:
        found.paths.append(request.path)
        return web.Response(body=b"secret internal data")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner, found.url = await serve("127.0.0.1", app)
    yield found
    await runner.cleanup()


def pointer(url: str, name: str) -> Attachment:
    """An attachment pointer naming ``url``, as any Session client can send."""
    return Attachment(
        url=url,
        key=bytes(64),
        size=20,
        digest=bytes(32),
        content_type="image/png",
        file_name=name,
    )


# --- SSRF: downloads only from the allow-list, never to internal addresses ---------------


async def test_a_dm_attachment_on_an_internal_server_is_never_fetched(
    dm_env: DmEnv, matrix_users: MatrixUsers, inside: Inside
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, _ = await dm_env.session_user("Sam")
    await sam.send_text(
        login.session_id, "look at this", attachments=(pointer(f"{inside.url}/file/x", "cat.png"),)
    )
    room_id = await joined_portal(dm_env, alice, login.session_id, sam.session_id.value)
    notice = await matrix_sees(alice, room_id, r"^A file \(cat\.png\) was sent from Session but")
    assert inside.paths == []
    assert notice.content.body.endswith(
        "it is not on a Session file server this bridge downloads from."
    )
    await wait_for(lambda: _sees(alice, room_id, "look at this"), "the text of the message")


async def _sees(user: Any, room_id: RoomID, body: str) -> bool:
    return any(body_is(body)(e) for e in await room_events(user, str(room_id)))


@pytest.fixture
async def counted_community() -> AsyncIterator[tuple[CommunityAndFiles, RequestCounter]]:
    """The devnet's community server, counting the requests it gets."""
    counter = RequestCounter()
    servers = CommunityAndFiles(middlewares=[counter.middleware])
    await servers.start()
    yield servers, counter
    await servers.stop()


async def test_community_attachments_on_foreign_or_internal_hosts_are_never_fetched(
    bridge_config: Config,
    matrix_users: MatrixUsers,
    inside: Inside,
    counted_community: tuple[CommunityAndFiles, RequestCounter],
) -> None:
    servers, counter = counted_community
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        room = next(iter(servers.community.state.rooms))
        key = servers.community.pubkey_hex
        # Bridged at 127.0.0.1, the host the test config lists in session.internal_hosts.
        room_id = await bridged_room(
            alice, bridge_config.bot_mxid, f"{servers.community_url}/{room}?public_key={key}"
        )
        by_name = servers.community_url.replace("127.0.0.1", "localhost")
        async with aiohttp.ClientSession() as http:
            devnet = CommunityDevnet(servers, http)
            sam = await devnet.member()
            attachments = (
                pointer(f"{inside.url}/file/x", "foreign.png"),  # another server: not allowed
                pointer(f"{by_name}/file/y", "internal.png"),  # the same server by another name
            )
            await sam.post(room, VisibleMessage(body="see the maps", attachments=attachments))
            await matrix_sees(alice, room_id, "^see the maps$")
            notices = [
                await matrix_sees(alice, room_id, f"^📎 {re.escape(name)}: ")
                for name in ("foreign.png", "internal.png")
            ]
            assert inside.paths == []
            assert not [p for p in counter.paths if p.startswith("/file/")]
            for notice in notices:
                assert notice.content.body.endswith(
                    "is not on a Session server this bridge downloads from"
                )
                assert (
                    "127.0.0.1" not in notice.content.body
                    and "localhost" not in notice.content.body
                )
    finally:
        await app.stop()


async def test_a_user_cannot_make_the_bridge_connect_to_an_internal_address(
    bridge_config: Config, matrix_users: MatrixUsers, inside: Inside
) -> None:
    # The test config lists 127.0.0.1 in session.internal_hosts (the devnet runs there); the
    # same server by any other name or form of the address is someone else's to name.
    assert bridge_config.session.internal_hosts == ["127.0.0.1"]
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    bot = bridge_config.bot_mxid
    key = "ab" * 32
    port = inside.url.rsplit(":", 1)[1]
    try:
        room_id = await open_management_room(alice, bot)
        for host in ("localhost", "[::ffff:127.0.0.1]"):  # a name, a form of the address
            await alice.send_text(room_id, f"open http://{host}:{port}/lobby?public_key={key}")

        async def refusals() -> list[str] | None:
            found = [
                b
                for b in await messages_from(alice, str(room_id), bot)
                if b.startswith("I do not connect to the community server")
            ]
            return found if len(found) == 2 else None

        found = await wait_for(refusals, "both refusals")
        assert inside.paths == []
        (by_name,) = [b for b in found if "localhost" in b]
        assert "127.0.0.1" not in by_name  # what localhost resolved to stays in the log
        assert await app.repos.portals.list_active(PortalKind.COMMUNITY) == []
    finally:
        await app.stop()


# --- relay carries only users with a permission level ------------------------------------


async def test_relay_refuses_users_without_a_permission_level(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice, bob, carol = [await matrix_users.new(n) for n in ("alice", "bob", "carol")]
    app = await start_bridge(bridge_config, str(alice.mxid))
    permissions = bridge_config.bridge.permissions  # the bridge reads this very mapping
    permissions.clear()
    permissions.update({str(alice.mxid): "admin", str(bob.mxid): "relay"})  # carol: nothing
    bot = bridge_config.bot_mxid
    try:
        room_id = await bridged_room(alice, bot, devnet.url)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        for user in (bob, carol):
            await alice.invite_user(room_id, user.mxid)
            await user.join_room(room_id)
        sam = await devnet.member()
        await sam.post(devnet.room, VisibleMessage(body="hello from Sam"))
        hello = await matrix_sees(alice, room_id, "^hello from Sam$")

        await carol.send_text(room_id, "carol was here")
        refusal = "not sent to Session. You are not allowed to use this bridge"
        await bot_says(alice, room_id, bot, f"Your message was {refusal}")
        await carol.react(room_id, hello.event_id, "👍")
        await bot_says(alice, room_id, bot, f"Your reaction was {refusal}")

        await bob.send_text(room_id, "bob was here")  # after carol's, in the same room queue
        await session_sees(sam, devnet.room, ": bob was here$")
        recent = await sam.recent(devnet.room, 50)
        bodies = [getattr(m.content, "body", None) or "" for m in recent]
        assert not [b for b in bodies if "carol" in b]
        assert all(not m.reactions for m in recent)
    finally:
        await app.stop()


async def test_a_login_does_not_outlive_its_owners_permission_level(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    # Bob logged in while he had a level; the admin then took it away (bridge.permissions is
    # read at each event, as after an edit and a restart). Neither his login nor the relay
    # carries him any more.
    alice, bob = [await matrix_users.new(n) for n in ("alice", "bob")]
    app = await start_bridge(bridge_config, str(alice.mxid))
    permissions = bridge_config.bridge.permissions  # the bridge reads this very mapping
    bot = bridge_config.bot_mxid
    try:
        room_id = await bridged_room(alice, bot, devnet.url)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.invite_user(room_id, bob.mxid)
        await bob.join_room(room_id)
        await app.logins.create_new(str(bob.mxid))
        sam = await devnet.member()
        await sam.post(devnet.room, VisibleMessage(body="hello from Sam"))
        hello = await matrix_sees(alice, room_id, "^hello from Sam$")
        await bob.send_text(room_id, "bob while he may")
        await session_sees(sam, devnet.room, "^bob while he may$")  # through his own login

        permissions.clear()
        permissions[str(alice.mxid)] = "admin"
        await bob.send_text(room_id, "bob after the revocation")
        refusal = "not sent to Session. You are not allowed to use this bridge"
        await bot_says(alice, room_id, bot, f"Your message was {refusal}")
        await bob.react(room_id, hello.event_id, "👍")
        await bot_says(alice, room_id, bot, f"Your reaction was {refusal}")
        await alice.send_text(room_id, "alice after bob")  # after bob's, in the same queue
        await session_sees(sam, devnet.room, ": alice after bob$")
        recent = await sam.recent(devnet.room, 50)
        bodies = [getattr(m.content, "body", None) or "" for m in recent]
        assert not [b for b in bodies if "revocation" in b]
        assert all(not m.reactions for m in recent)
    finally:
        await app.stop()


async def test_a_direct_chat_does_not_outlive_its_owners_permission_level(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, inbox = await dm_env.session_user("Sam")
    await sam.send_text(login.session_id, "hi alice")
    room_id = await joined_portal(dm_env, alice, login.session_id, sam.session_id.value)
    await alice.send_text(room_id, "alice while she may")
    await session_gets(
        inbox, "alice's text", lambda c: getattr(c, "body", "") == "alice while she may"
    )

    dm_env.app.config.bridge.permissions.clear()  # nobody has a level any more
    await alice.send_text(room_id, "alice after the revocation")
    refusal = "Your message was not sent to Session. You are not allowed to use this bridge"
    await bot_says(alice, room_id, dm_env.app.config.bot_mxid, refusal)
    assert not [
        m for m in inbox.messages if "revocation" in (getattr(m.content, "body", "") or "")
    ]


# --- what reaches Session: no controls, no escapes, no bidi overrides, only real users ------


async def test_controls_escapes_and_bidi_overrides_never_reach_session(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    bot = bridge_config.bot_mxid
    try:
        room_id = await bridged_room(alice, bot, devnet.url)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.set_displayname("Al\u202eice\x1b[5m")

        async def renamed_in_the_room() -> bool:
            # Synapse updates the room's member event after answering set_displayname.
            member = await alice.get_state_event(room_id, EventType.ROOM_MEMBER, alice.mxid)
            return bool(member.displayname == "Al\u202eice\x1b[5m")

        await wait_for(renamed_in_the_room, "the new name in the room")
        sam = await devnet.member()
        body = "a\x00b \x1b[31mred\x1b[0m \u202eevil\u202c \u2066iso\u2069 ding\x07\x85 end"
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
        await alice.send_message(room_id, content)
        post = await session_sees(sam, devnet.room, "end$")
        text = post.content.body  # type: ignore[union-attr]
        assert text.endswith("ab red evil iso ding end")
        bad = "\x00\x07\x1b\x85\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        assert not [c for c in text if c in bad], repr(text)
        assert text.startswith("Alice")
    finally:
        await app.stop()


async def test_an_event_whose_sender_is_not_a_user_never_reaches_session(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    # Everyone may be relayed here, so only the sender check stands in the way.
    bridge_config.bridge.permissions["*"] = "relay"
    bot = bridge_config.bot_mxid
    try:
        room_id = await bridged_room(alice, bot, devnet.url)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        sam = await devnet.member()
        forged = {
            "type": "m.room.message",
            "room_id": str(room_id),
            "sender": "not a user: mallory",
            "event_id": f"$forged{uuid.uuid4().hex}",
            "origin_server_ts": 1_790_000_000_000,
            "content": {"msgtype": "m.text", "body": "forged words"},
        }
        address, token = bridge_config.appservice.address, bridge_config.appservice.hs_token
        url = f"{address}/_matrix/app/v1/transactions/forged-{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.put(url, json={"events": [forged]}, headers=headers) as resp,
        ):
            assert resp.status == 200
        await alice.send_text(room_id, "after the forgery")
        await session_sees(sam, devnet.room, "after the forgery$")
        bodies = [
            getattr(m.content, "body", None) or "" for m in await sam.recent(devnet.room, 50)
        ]
        assert not [b for b in bodies if "forged" in b or "mallory" in b]
    finally:
        await app.stop()


# --- no secret in any log line, at DEBUG --------------------------------------------------


async def test_no_secret_reaches_a_debug_log(tmp_path: Path, matrix_users: MatrixUsers) -> None:
    alice = await matrix_users.new("alice")
    config_path, address = await write_process_config(
        tmp_path, str(alice.mxid), {("logging", "level"): "DEBUG"}
    )
    config = load_config(config_path)
    log_path = tmp_path / "bridge.log"
    bridge = BridgeProcess(config_path, address, log_path)
    await bridge.start()
    bot = config.bot_mxid
    hs_token = config.appservice.hs_token
    try:
        room_id = await open_management_room(alice, bot)
        await alice.send_text(room_id, "login new")
        shown = await bot_says(alice, room_id, bot, "Recovery phrase of `05")
        new_phrase = re.search(r":\s+`([a-z ]+)`", shown).group(1)  # type: ignore[union-attr]
        await alice.send_text(room_id, "saved")
        await bot_says(alice, room_id, bot, "I deleted the message with your recovery phrase")
        imported = Identity.generate()
        await alice.send_text(room_id, f"login {imported.phrase}")
        await bot_says(
            alice, room_id, bot, f"Logged in as Session account `{imported.session_id}`"
        )
        # A homeserver that still sends the legacy query token as well as the header.
        query = f"{address}/_matrix/app/v1/users/@nobody:localhost?access_token={hs_token}"
        headers = {"Authorization": f"Bearer {hs_token}"}
        async with aiohttp.ClientSession() as http, http.get(query, headers=headers) as resp:
            assert resp.status < 500
    finally:
        assert await bridge.stop() == 0
    text = log_path.read_text()
    secrets = [config.appservice.as_token, hs_token, config.bridge.secrets_key]
    for phrase in (new_phrase, imported.phrase):
        seed = decode(phrase)
        secrets += [phrase, seed.hex(), seed.ljust(32, b"\0").hex()]
        words = phrase.split()
        secrets += [" ".join(words[i : i + 4]) for i in range(len(words) - 3)]
    assert [s for s in secrets if s in text] == []
    # The log really is at DEBUG: mautrix's requests and the access log are in it.
    assert re.search(r"req #\d+: PUT \S+/send/m\.room\.message/\S+ <body not logged>", text)
    assert "/_matrix/app/v1/users/@nobody:localhost?access_token=<redacted>" in text
