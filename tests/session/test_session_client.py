"""SessionClient on the devnet: two clients exchange direct messages (§2, §3, §6, §7)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os

import nacl.bindings as sodium
import pytest

from bridge.session.attachments import AttachmentDigestMismatch
from bridge.session.dm_events import (
    ClientEvent,
    DirectMessageEvent,
    SentMessage,
    UnsupportedKind,
    decode_inbox_message,
)
from bridge.session.envelope import encode_stored_message
from bridge.session.keys import Identity
from bridge.session.messages import (
    Attachment,
    MessageRequestResponse,
    Quote,
    Reaction,
    ReactionAction,
    ReadReceipt,
    Typing,
    Unsend,
    VisibleMessage,
    content_to_proto,
)
from bridge.session.onetoone import MessageKeys, MessageTooLarge, encrypt_for_recipient
from bridge.session.outgoing import OutgoingMessage
from bridge.session.padding import pad_message
from bridge.session.poller import MemoryPollState
from bridge.session.proto import SessionProtos_pb2 as pb
from bridge.session.sent_clock import SentClock
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.helpers import nodes_of, wait_for


async def test_text_quote_reaction_unsend_typing_receipt() -> None:
    async with dm_world() as world:
        a_inbox, b_inbox = Inbox(), Inbox()
        alice = await world.client(inbox=a_inbox)
        bob = await world.client(inbox=b_inbox)
        await alice.set_profile("Alice")

        hello = await alice.send_text(bob.session_id, "hello bob")
        await b_inbox.wait_count(1)
        got = b_inbox.messages[0]
        assert (got.sender, got.timestamp, got.hash) == (alice.session_id, *_ts_hash(hello))
        assert isinstance(got.content, VisibleMessage) and got.content.body == "hello bob"
        assert got.content.profile is not None and got.content.profile.display_name == "Alice"
        assert not got.is_sync and got.conversation == alice.session_id

        quote = Quote(got.timestamp, got.sender.value)
        await bob.send_text(alice.session_id, "hi alice", quote=quote)
        await bob.send_reaction(alice.session_id, alice.session_id, hello.timestamp, "👍")
        await bob.send_reaction(alice.session_id, alice.session_id, hello.timestamp, "👍", True)
        await bob.send_typing(alice.session_id, True)
        await bob.send_read_receipt(alice.session_id, [hello.timestamp])
        await bob.accept_message_request(alice.session_id)
        await a_inbox.wait_count(6)
        reply, react, unreact, typing, receipt, accept = a_inbox.contents()
        assert isinstance(reply, VisibleMessage) and reply.body == "hi alice"
        assert reply.quote is not None
        assert (reply.quote.timestamp, reply.quote.author) == (
            hello.timestamp,
            alice.session_id.value,
        )
        assert react == Reaction(
            hello.timestamp, alice.session_id.value, "👍", sig_timestamp=react.sig_timestamp
        )
        assert isinstance(unreact, Reaction) and unreact.action is ReactionAction.REMOVE
        assert isinstance(typing, Typing) and typing.started
        assert isinstance(receipt, ReadReceipt) and receipt.timestamps == (hello.timestamp,)
        assert isinstance(accept, MessageRequestResponse) and accept.is_approved

        await alice.send_unsend(bob.session_id, hello.timestamp)
        await b_inbox.wait_count(1, Unsend)
        (unsend,) = b_inbox.contents(Unsend)
        assert isinstance(unsend, Unsend)
        assert (unsend.target_timestamp, unsend.target_author) == (
            hello.timestamp,
            alice.session_id.value,
        )


def _ts_hash(sent: SentMessage) -> tuple[int, str]:
    return sent.timestamp, sent.hash


async def test_attachment_bytes_equal_after_download() -> None:
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client()
        bob = await world.client(inbox=inbox)
        data = os.urandom(300_000)  # large enough to go through the worker thread
        sent = await alice.send_attachment(
            bob.session_id, data, "photo.jpg", "image/jpeg", caption="look"
        )
        await inbox.wait_count(1)
        event = inbox.messages[0]
        assert event.hash == sent.hash
        assert isinstance(event.content, VisibleMessage) and event.content.body == "look"
        (pointer,) = event.content.attachments
        assert (pointer.file_name, pointer.content_type, pointer.size) == (
            "photo.jpg",
            "image/jpeg",
            len(data),
        )
        assert await bob.download_attachment(pointer) == data
        # the digest in the (signed) pointer is checked against the downloaded blob
        forged = Attachment(pointer.url, pointer.key, pointer.size, bytes(32))
        with pytest.raises(AttachmentDigestMismatch):
            await bob.download_attachment(forged)


async def test_avatar_round_trip_through_profile() -> None:
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client()
        bob = await world.client(inbox=inbox)
        await alice.set_profile("Alice", b"\x89PNG fake image")
        await alice.set_profile("Alice B.")  # keeps the avatar
        await alice.send_text(bob.session_id, "with avatar")
        await inbox.wait_count(1)
        content = inbox.contents()[0]
        assert isinstance(content, VisibleMessage) and content.profile is not None
        assert content.profile.display_name == "Alice B."
        assert await bob.download_avatar(content.profile) == b"\x89PNG fake image"


async def test_a_prepared_message_stored_twice_is_one_message() -> None:
    # A retry after a crash stores the kept bytes again: the nodes answer "already" and the
    # recipient gets the message once; a fresh encoding would be a second message.
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client(start=False)
        bob = await world.client(inbox=inbox)
        kept = alice.prepare_text(bob.session_id, "once")
        again = OutgoingMessage.from_json(json.loads(json.dumps(kept.to_json())))
        first, second = await alice.send_prepared(kept), await alice.send_prepared(again)
        assert first == second
        await alice.send_text(bob.session_id, "after")
        await inbox.wait_count(2)
        assert inbox.bodies() == ["once", "after"]
        assert inbox.messages[0].timestamp == kept.timestamp


async def test_timestamps_unique_and_increasing() -> None:
    async with dm_world() as world:
        alice = await world.client(start=False)
        bob = await world.client(start=False)
        sent = await asyncio.gather(*(alice.send_text(bob.session_id, str(i)) for i in range(30)))
        stamps = [s.timestamp for s in sent]
        assert len(set(stamps)) == 30 and stamps == sorted(stamps)
        assert len({s.hash for s in sent}) == 30


async def test_two_identities_in_one_millisecond_get_distinct_timestamps() -> None:
    # Android drops a message whose timestamp it saw before from any sender (§2.11): the
    # bridge's identities share the snode client's one clock. Network time stands still here.
    async with dm_world() as world:
        frozen = world.snode.clock.now_ms()
        world.snode.sent_clock = SentClock(lambda: frozen)
        inbox = Inbox()
        carol = await world.client(inbox=inbox)
        bot = await world.client(start=False)
        login = await world.client(start=False)
        sends = [
            c.send_text(carol.session_id, f"{n}{i}")
            for i in range(5)
            for n, c in (("bot", bot), ("login", login))
        ]
        sent = await asyncio.gather(*sends)
        stamps = [s.timestamp for s in sent]
        assert stamps == list(range(frozen, frozen + 10))
        await inbox.wait_count(10)
        got = {(e.sender, e.timestamp) for e in inbox.messages}
        assert len({t for _, t in got}) == 10
        assert {s for s, _ in got} == {bot.session_id, login.session_id}


async def test_node_down_delivery_continues() -> None:
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client()
        bob = await world.client(inbox=inbox)
        await alice.send_text(bob.session_id, "before")
        await inbox.wait_count(1)
        first, second, _ = nodes_of(world.net, bob.session_id.value)
        await world.net.node_down(first)
        for i in range(5):
            await alice.send_text(bob.session_id, f"during {i}")
        await world.net.node_down(second)
        await alice.send_text(bob.session_id, "one node left")
        await inbox.wait_count(7)
        assert inbox.bodies() == ["before", *(f"during {i}" for i in range(5)), "one node left"]
        assert len({e.hash for e in inbox.messages}) == 7


async def test_restart_mid_burst_loses_nothing_repeats_nothing() -> None:
    async with dm_world() as world:
        state = MemoryPollState()
        bob_id = Identity.generate()
        alice = await world.client(start=False)
        first = Inbox()
        stopping: list[asyncio.Task[None]] = []

        async def on_event(event: ClientEvent) -> None:
            await first(event)
            if len(first.messages) == 12:  # restart while this event is still in hand
                stopping.append(asyncio.create_task(bob.stop()))
                await asyncio.sleep(0)  # let stop() begin while we still hold the event

        bob = await world.client(bob_id, state, inbox=on_event, max_count=5)
        stamps = [(await alice.send_text(bob_id.session_id, f"m{i}")).timestamp for i in range(20)]
        await wait_for(lambda: bool(stopping))
        await stopping[0]
        assert len(first.messages) == 12
        second = Inbox()
        await world.client(bob_id, state, inbox=second, max_count=5)
        stamps += [
            (await alice.send_text(bob_id.session_id, f"m{i}")).timestamp for i in range(20, 40)
        ]
        await wait_for(lambda: len(first.messages) + len(second.messages) >= 40, timeout=15)
        received = first.messages + second.messages
        assert [e.timestamp for e in received] == stamps  # all 40, in order, none twice
        assert len({e.hash for e in received}) == 40
        assert second.bodies() == [f"m{i}" for i in range(12, 40)]


async def test_crash_while_subscriber_busy_redelivers_same_hash() -> None:
    async with dm_world() as world:
        state = MemoryPollState()
        bob_id = Identity.generate()
        alice = await world.client(start=False)
        entered = asyncio.Event()

        async def stuck(event: object) -> None:
            entered.set()
            await asyncio.Event().wait()  # never returns: the "crash" happens meanwhile

        bob = await world.client(bob_id, state, inbox=stuck)
        sent = await alice.send_text(bob_id.session_id, "once")
        await asyncio.wait_for(entered.wait(), 10)
        await bob.stop(timeout=0.1)  # cannot finish delivery: cancelled, not acknowledged
        again = Inbox()
        await world.client(bob_id, state, inbox=again)
        await again.wait_count(1)
        assert [e.hash for e in again.messages] == [sent.hash]


async def test_failing_subscriber_gets_the_event_again() -> None:
    async with dm_world() as world:
        seen: list[str] = []

        async def flaky(event: object) -> None:
            assert isinstance(event, DirectMessageEvent)
            seen.append(event.hash)
            if len(seen) == 1:
                raise RuntimeError("database briefly down")

        alice = await world.client(start=False)
        bob = await world.client(inbox=flaky, retry_delay=0.01)
        first = await alice.send_text(bob.session_id, "a")
        second = await alice.send_text(bob.session_id, "b")
        await wait_for(lambda: len(seen) >= 3)
        assert seen == [first.hash, first.hash, second.hash]


class FlakyState(MemoryPollState):
    """A poll-state store whose first ``mark_seen`` fails (a database hiccup)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("poll-state database unavailable")
        await super().mark_seen(account, hash_, expiry)


async def test_state_store_failure_redelivers_instead_of_losing() -> None:
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client(start=False)
        bob = await world.client(None, FlakyState(), inbox=inbox)
        sent = await alice.send_text(bob.session_id, "survives")
        await inbox.wait_count(2)
        assert [e.hash for e in inbox.messages] == [sent.hash, sent.hash]


async def test_async_iterator_subscriber() -> None:
    async with dm_world() as world:
        alice = await world.client(start=False)
        bob = await world.client(start=False)
        stream = bob.events()
        await bob.start()
        sent = [await alice.send_text(bob.session_id, f"n{i}") for i in range(3)]
        got: list[str] = []
        async with asyncio.timeout(10):
            async for event in stream:
                assert isinstance(event, DirectMessageEvent)
                got.append(event.hash)
                if len(got) == 3:
                    break
        await stream.aclose()
        assert got == [s.hash for s in sent]


async def test_sync_copies_recognised_and_deleted_on_unsend() -> None:
    async with dm_world() as world:
        a_inbox = Inbox()
        alice = await world.client(inbox=a_inbox, sync_copies=True)
        bob = await world.client(start=False)
        sent = await alice.send_text(bob.session_id, "note")
        assert sent.sync_hash is not None
        await a_inbox.wait_count(1)
        (echo,) = a_inbox.messages
        assert echo.hash == sent.sync_hash and echo.timestamp == sent.timestamp
        assert echo.is_sync and echo.from_this_client and echo.conversation == bob.session_id
        await alice.send_unsend(bob.session_id, sent.timestamp)
        stored = await world.snode.retrieve(alice._signer)
        assert sent.sync_hash not in {m.hash for m in stored.messages}


async def test_bad_input_dropped_with_one_line_and_later_messages_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with dm_world() as world:
        inbox = Inbox()
        alice = await world.client(start=False)
        bob = await world.client(inbox=inbox)
        bob_x = bob.session_id.key
        await world.snode.store(bob.session_id.value, b"\x00garbage, not a wrapper\xff")
        await world.snode.store(bob.session_id.value, _wrongly_signed(alice, bob_x))
        await world.snode.store(bob.session_id.value, _call_message(alice, bob_x))
        with caplog.at_level(logging.WARNING, logger="bridge.session"):
            good = await alice.send_text(bob.session_id, "still works")
            await inbox.wait_count(1)
        assert [e.hash for e in inbox.messages] == [good.hash]
        drops = [r for r in caplog.records if "dropping undecodable" in r.getMessage()]
        assert len(drops) == 3
        assert {"MalformedEnvelope", "BadSignature", "UnsupportedKind"} <= {
            type(r.args[2]).__name__ if isinstance(r.args, tuple) else "" for r in drops
        }


def test_oversized_and_unknown_kinds_are_typed_errors() -> None:
    keys = MessageKeys.from_seed(os.urandom(32))
    with pytest.raises(MessageTooLarge):
        decode_inbox_message(keys, bytes(60_000))
    alice = Identity.generate()
    data = base64.b64decode(_call_message_from(alice, keys.x25519_public_key))
    with pytest.raises(UnsupportedKind):
        decode_inbox_message(keys, data)


# --- crafting bad input ------------------------------------------------------------------------


def _keys(client: object) -> MessageKeys:
    return client._keys  # type: ignore[attr-defined,no-any-return]


def _wrongly_signed(sender: object, recipient_x: bytes) -> bytes:
    """A message claiming ``sender``'s Ed25519 key but signed by another key (§3.2 step 4)."""
    keys = _keys(sender)
    plaintext = pad_message(content_to_proto(VisibleMessage(body="forged", sig_timestamp=1)))
    _, mallory = sodium.crypto_sign_keypair()
    signed = plaintext + keys.ed25519_public_key + recipient_x
    signature = sodium.crypto_sign(signed, mallory)[:64]
    inner = plaintext + keys.ed25519_public_key + signature
    return base64.b64decode(encode_stored_message(sodium.crypto_box_seal(inner, recipient_x), 1))


def _call_message(sender: object, recipient_x: bytes) -> bytes:
    return base64.b64decode(_call_message_from(_keys(sender), recipient_x))


def _call_message_from(sender: MessageKeys | Identity, recipient_x: bytes) -> str:
    """A correctly encrypted ``Content`` holding only a call message (an unsupported kind)."""
    keys = (
        sender if isinstance(sender, MessageKeys) else MessageKeys.from_seed(sender.ed25519_seed)
    )
    content = pb.Content()
    content.callMessage.type = pb.CallMessage.END_CALL
    content.callMessage.uuid = "call"
    content.sigTimestamp = 5
    ciphertext = encrypt_for_recipient(keys, recipient_x, pad_message(content.SerializeToString()))
    return encode_stored_message(ciphertext, 5)
