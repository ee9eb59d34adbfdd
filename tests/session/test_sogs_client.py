"""The community client against the devnet community server (docs/session-protocol.md §5)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session.blinding import session_id_matches_blinded_id
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.messages import Attachment, Profile, VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.cursors import MemoryCursorStore
from bridge.session.sogs.decode import decode_message
from bridge.session.sogs.errors import (
    CommunityForbidden,
    CommunityNotFound,
    CommunityUnreachable,
    InvalidCommunityUrl,
    RoomNotFound,
    WrongServerKey,
)
from bridge.session.sogs.models import CommunityMessage, PollResult, ReactionUpdate
from bridge.session.sogs.poll import PollCursors, parse_poll
from bridge.session.sogs.posts import sign_post
from bridge.session.sogs.transport import SogsTransport
from bridge.session.sogs.urls import CommunityServerRef, parse_community_url
from tests.sessionnet.community import CommunityServer
from tests.sessionnet.community_state import RoomSpec
from tests.sessionnet.extras import RequestCounter, serve

ROOMS = [RoomSpec(f"room{i}", f"Room {i}") for i in range(10)]


@dataclass
class Net:
    server: CommunityServer
    ref: CommunityServerRef
    counter: RequestCounter
    http: aiohttp.ClientSession

    def client(self, identity: Identity, **kwargs: object) -> CommunityClient:
        return CommunityClient(self.http, identity, self.ref, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def community(rooms: Iterable[RoomSpec] = ROOMS) -> AsyncIterator[Net]:
    server = CommunityServer(rooms)
    counter = RequestCounter()
    runner, url = await serve("127.0.0.1", server.make_app([counter.middleware]))
    try:
        async with aiohttp.ClientSession() as http:
            yield Net(server, CommunityServerRef(url, server.pubkey), counter, http)
    finally:
        await runner.cleanup()


async def poll_until(
    client: CommunityClient, done: Callable[[PollResult], bool], timeout: float = 5.0
) -> PollResult:
    """Poll (and commit) until ``done(result)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await client.poll()
        await client.commit(result)
        if done(result):
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def messages(result: PollResult, room: str) -> list[CommunityMessage]:
    return [m for m in result.rooms[room].items if isinstance(m, CommunityMessage)]


def text(body: str) -> VisibleMessage:
    return VisibleMessage(body=body, profile=Profile(display_name="tester"))


async def test_post_read_edit_react_delete() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with community() as net:
        a, b = net.client(alice), net.client(bob)
        await a.join("room0")
        await b.join("room0")
        posted = await a.post("room0", text("hello"))

        got = await poll_until(b, lambda r: bool(messages(r, "room0")))
        (msg,) = messages(got, "room0")
        assert (msg.id, msg.error, msg.deleted) == (posted.id, None, False)
        assert isinstance(msg.content, VisibleMessage) and msg.content.body == "hello"
        assert msg.author == a.blinded_id
        assert session_id_matches_blinded_id(alice.session_id, a.blinded_id, net.ref.pubkey)

        await a.edit("room0", posted.id, text("hello, edited"))
        got = await poll_until(b, lambda r: bool(messages(r, "room0")))
        (edit,) = messages(got, "room0")
        assert edit.id == posted.id and edit.seqno > msg.seqno and edit.edited is not None
        assert isinstance(edit.content, VisibleMessage) and edit.content.body == "hello, edited"

        assert (await b.react("room0", posted.id, "👍")).changed
        assert not (await b.react("room0", posted.id, "👍")).changed  # already there
        got = await poll_until(a, lambda r: bool(r.rooms["room0"].items))
        last = got.rooms["room0"].items[-1]
        (reaction,) = last.reactions
        assert (reaction.emoji, reaction.count, reaction.reactors) == (
            "👍",
            1,
            (b.blinded_id.value,),
        )

        await poll_until(b, lambda r: True)  # b catches up with its own reaction
        await b.unreact("room0", posted.id, "👍")
        got = await poll_until(a, lambda r: bool(r.rooms["room0"].items))
        (update,) = got.rooms["room0"].items
        assert isinstance(update, ReactionUpdate) and update.reactions == ()

        await a.delete("room0", posted.id)
        got = await poll_until(b, lambda r: bool(messages(r, "room0")))
        (gone,) = messages(got, "room0")
        assert gone.id == posted.id and gone.deleted and gone.content is None
        assert await a.recent("room0") == []


async def test_only_the_author_can_edit_or_delete() -> None:
    async with community() as net:
        a, b = net.client(Identity.generate()), net.client(Identity.generate())
        posted = await a.post("room1", text("mine"))
        with pytest.raises(CommunityForbidden):
            await b.edit("room1", posted.id, text("yours now"))
        with pytest.raises(CommunityForbidden):
            await b.delete("room1", posted.id)


async def test_whispers_reach_only_their_target_and_the_moderators() -> None:
    async with community() as net:
        mod, bot, other, plain = (net.client(Identity.generate()) for _ in range(4))
        for client in (mod, bot, other, plain):
            await client.join("room2")
        net.server.add_moderator("room2", mod.blinded_id.value)
        with pytest.raises(CommunityForbidden):  # only moderators may whisper (§5.6)
            await plain.post("room2", text("psst"), whisper_to=bot.blinded_id.value)
        to_bot = await mod.post("room2", text("to the bot"), whisper_to=bot.blinded_id.value)
        to_mods = await mod.post("room2", text("to the mods"), whisper_mods=True)
        public = await plain.post("room2", text("to everyone"))

        def seen(result: PollResult) -> dict[int, CommunityMessage]:
            return {m.id: m for m in messages(result, "room2")}

        got = seen(await poll_until(bot, lambda r: public.id in seen(r)))
        assert set(got) == {to_bot.id, public.id}
        whisper = got[to_bot.id]
        assert (whisper.whisper, whisper.whisper_to, whisper.whisper_mods) == (
            True,
            bot.blinded_id.value,
            False,
        )
        assert isinstance(whisper.content, VisibleMessage) and whisper.content.body == "to the bot"
        assert not got[public.id].whisper and got[public.id].whisper_to is None
        got = seen(await poll_until(other, lambda r: public.id in seen(r)))
        assert set(got) == {public.id}

        # a moderator (the bot made one) also sees the whispers to the moderators
        net.server.add_moderator("room2", bot.blinded_id.value)
        assert {m.id for m in await bot.recent("room2")} == {to_bot.id, to_mods.id, public.id}
        mods_only = await bot.message("room2", to_mods.id)
        assert mods_only.whisper and mods_only.whisper_mods and mods_only.whisper_to is None
        assert [m.id for m in await other.recent("room2")] == [public.id]


async def test_a_404_page_is_reported_by_status_not_quoted() -> None:
    async with community() as net:
        a = net.client(Identity.generate())
        posted = await a.post("room3", text("soon gone"))
        await a.delete("room3", posted.id)
        with pytest.raises(CommunityNotFound) as gone:  # the server answers with an HTML page
            await a.edit("room3", posted.id, text("too late"))
        assert str(gone.value) == "HTTP 404: Not Found" and gone.value.status == 404
        with pytest.raises(RoomNotFound) as no_room:
            await a.post("nowhere", text("hello?"))
        assert str(no_room.value) == "room 'nowhere' not found: Not Found"


async def test_file_upload_and_download_with_a_post() -> None:
    data = bytes(range(256)) * 400
    async with community() as net:
        a, b = net.client(Identity.generate()), net.client(Identity.generate())
        await b.join("room2")
        upload = await a.upload("room2", data, "photo 1.jpg")
        pointer = Attachment(url=upload.url, size=len(data), content_type="image/jpeg")
        message = VisibleMessage(body="pic", attachments=(pointer,))
        await a.post("room2", message, files=[upload.id])
        got = await poll_until(b, lambda r: bool(messages(r, "room2")))
        (msg,) = messages(got, "room2")
        assert isinstance(msg.content, VisibleMessage)
        url = msg.content.attachments[0].url
        assert url == f"{net.ref.base_url}/room/room2/file/{upload.id}"
        assert await b.download("room2", int(url.rsplit("/", 1)[1])) == data


async def test_blinded_inbox_both_ways_learns_the_real_session_id() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with community() as net:
        a, b = net.client(alice), net.client(bob)
        await a.poll()  # both have now used the server, so they can receive (§5.10)
        await b.poll()
        await a.send_inbox(b.blinded_id, text("hi bob"))
        got = await poll_until(b, lambda r: bool(r.inbox))
        (entry,) = got.inbox
        assert entry.sender == alice.session_id and entry.sender_blinded == a.blinded_id
        assert isinstance(entry.content, VisibleMessage) and entry.content.body == "hi bob"

        await b.send_inbox(entry.sender_blinded, text("hi alice"))
        got = await poll_until(a, lambda r: bool(r.inbox))
        (reply,) = got.inbox
        assert reply.sender == bob.session_id and reply.error is None
        assert isinstance(reply.content, VisibleMessage) and reply.content.body == "hi alice"
        (sent,) = got.outbox  # a's own outgoing message, decrypted from the outbox
        assert sent.outgoing and isinstance(sent.content, VisibleMessage)
        assert sent.content.body == "hi bob"
        # committed cursors: nothing comes twice
        again = await a.poll()
        assert again.inbox == () and again.outbox == ()


async def test_restart_mid_burst_loses_and_repeats_nothing() -> None:
    store = MemoryCursorStore()
    seen: list[int] = []
    async with community() as net:
        poster = net.client(Identity.generate())
        reader = Identity.generate()
        ids = [(await poster.post("room3", text(f"m{i}"))).id for i in range(10)]
        first = net.client(reader, cursors=store)
        await first.join("room3")
        result = await first.poll()
        seen += [m.id for m in messages(result, "room3")]
        await first.commit(result)

        burst = asyncio.create_task(_post_many(poster, "room3", 20, start=10))
        lost = await first.poll()  # fetched, then "crash" before commit: must come again
        del first
        second = net.client(reader, cursors=store)
        await second.join("room3")
        redelivered = await second.poll()
        lost_ids = {m.id for m in messages(lost, "room3")}
        assert lost_ids <= {m.id for m in messages(redelivered, "room3")}
        seen += [m.id for m in messages(redelivered, "room3")]
        await second.commit(redelivered)
        ids += await burst

        def collect(r: PollResult) -> bool:
            seen.extend(m.id for m in messages(r, "room3"))
            return len(seen) >= 30

        await poll_until(second, collect)
        assert seen == ids  # all 30, once each, in order


async def _post_many(client: CommunityClient, room: str, count: int, start: int) -> list[int]:
    return [(await client.post(room, text(f"m{i}"))).id for i in range(start, start + count)]


@pytest.mark.parametrize("joined", [1, 10])
async def test_one_http_request_per_poll(joined: int) -> None:
    async with community() as net:
        poster, reader = net.client(Identity.generate()), net.client(Identity.generate())
        for spec in ROOMS[:joined]:
            await poster.post(spec.token, text(f"in {spec.token}"))
            await reader.join(spec.token)
        net.counter.reset()
        result = await reader.poll()
        assert net.counter.requests == 1 and net.counter.paths == ["/batch"]
        assert sorted(result.rooms) == sorted(s.token for s in ROOMS[:joined])
        assert all(len(messages(result, t)) == 1 for t in result.rooms)


async def test_room_info_details_only_after_a_change() -> None:
    async with community() as net:
        client = net.client(Identity.generate())
        await client.join("room4")
        first = await client.poll()
        assert first.rooms["room4"].info is not None
        assert first.rooms["room4"].info.details is None
        net.server.bump_room_info("room4", name="Renamed")
        changed = await client.poll()
        info = changed.rooms["room4"].info
        assert info is not None and info.details is not None
        assert info.details.name == "Renamed"
        after = (await client.poll()).rooms["room4"].info
        assert after is not None and after.details is None


async def test_a_bad_post_is_reported_and_skipped() -> None:
    async with community() as net:
        writer, reader = Identity.generate(), net.client(Identity.generate())
        await reader.join("room5")
        data = b"\xff\xfe not a protobuf"
        body = {
            "data": base64.b64encode(data).decode(),
            "signature": base64.b64encode(sign_post(writer, net.ref.pubkey, data)).decode(),
        }
        raw = SogsTransport(net.http, writer, net.ref)
        await raw.call("POST", "/room/room5/message", json_body=body)
        await net.client(writer).post("room5", text("fine"))
        result = await reader.poll()
        bad, good = messages(result, "room5")
        assert bad.content is None and bad.error is not None
        assert isinstance(good.content, VisibleMessage) and good.error is None
        assert result.rooms["room5"].seqno == good.seqno  # the cursor moves past both


async def test_a_room_that_disappears_is_an_error_for_that_room_only() -> None:
    async with community() as net:
        client = net.client(Identity.generate())
        await client.join("room6")
        await client.join("room7")
        del net.server.state.rooms["room6"]
        result = await client.poll()
        assert isinstance(result.rooms["room6"].error, RoomNotFound)
        assert result.rooms["room7"].error is None and result.rooms["room7"].info is not None


async def test_typed_errors_for_unknown_room_wrong_key_and_unreachable() -> None:
    async with community() as net:
        client = net.client(Identity.generate())
        with pytest.raises(RoomNotFound):
            await client.join("nope")
        assert await client.capabilities() == ["blind", "reactions", "sogs"]
        assert [r.token for r in await client.rooms()] == [s.token for s in ROOMS]
        wrong = CommunityClient(
            net.http, Identity.generate(), CommunityServerRef(net.ref.base_url, b"\x01" * 32)
        )
        with pytest.raises(WrongServerKey):
            await wrong.capabilities()
        port = int(net.ref.base_url.rsplit(":", 1)[1])
    async with aiohttp.ClientSession() as http:
        gone = CommunityServerRef(f"http://127.0.0.1:{port}", b"\x01" * 32)
        with pytest.raises(CommunityUnreachable):
            await CommunityClient(http, Identity.generate(), gone).poll()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/room?public_key=" + "00" * 32,
        "https://host/room",
        "https://host/room?public_key=abc",
        "https://host/a/b?public_key=" + "00" * 32,
        "https://host/?public_key=" + "00" * 32,
        "https://host:99999/room?public_key=" + "00" * 32,
    ],
)
def test_bad_community_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidCommunityUrl):
        parse_community_url(url)


def test_community_url_round_trip() -> None:
    key = "a03c383cf63c3c4efe67acc52112a6dd734b3a946b9545f488aaa93da7991238"
    parsed = parse_community_url(f"https://Open.GetSession.org/session?public_key={key}")
    assert parsed.room == "session" and parsed.server.pubkey.hex() == key
    assert str(parsed) == f"https://open.getsession.org/session?public_key={key}"
    assert parse_community_url(str(parsed)) == parsed


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=12,
)
MESSAGE_KEYS = ["id", "seqno", "session_id", "posted", "edited", "data", "signature", "reactions"]


@given(st.dictionaries(st.sampled_from(MESSAGE_KEYS), JSON) | JSON)
def test_decoding_random_message_json_only_raises_typed_errors(obj: object) -> None:
    try:
        decoded = decode_message("r", obj)
    except SessionError:
        return
    assert isinstance(decoded, CommunityMessage | ReactionUpdate)


@given(JSON)
def test_parsing_a_random_batch_reply_only_raises_typed_errors(obj: object) -> None:
    identity = Identity.from_seed(b"\x01" * 32)
    ref = CommunityServerRef("http://127.0.0.1:1", b"\x02" * 32)
    cursors = PollCursors({"r": 0}, {}, 0, 0)
    replies = obj if not isinstance(obj, list) else [*obj, *obj, *obj, *obj][:4]
    with suppress(SessionError):
        parse_poll(identity, ref, ["r"], cursors, replies)


@given(st.text(max_size=120))
def test_parsing_random_community_urls_only_raises_invalid_url(text: str) -> None:
    with suppress(InvalidCommunityUrl):
        parse_community_url(text)
