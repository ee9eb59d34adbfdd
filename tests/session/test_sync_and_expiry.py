"""Sync copies of every kind the apps sync, and the disappearing setting on what is sent
(docs/session-protocol.md §2.14, §3.3)."""

from __future__ import annotations

import base64
import time

from bridge.session.keys import Identity
from bridge.session.messages import (
    DisappearingSettings,
    Expiry,
    ExpiryMode,
    MessageRequestResponse,
    Profile,
    Reaction,
    ReadReceipt,
    Typing,
    Unsend,
    VisibleMessage,
)
from bridge.session.onetoone import MessageKeys, decode_direct_message
from bridge.session.outgoing import encode_outgoing, sync_copy_of
from tests.sessionnet.dm_setup import Inbox, dm_world

HOUR_S = 3600


def test_sync_copy_kinds() -> None:
    peer = Identity.generate().session_id.value
    profile = Profile("Me", "http://fs/file/1", b"k" * 32, 5)
    visible = sync_copy_of(VisibleMessage(body="x", profile=profile), peer)
    assert isinstance(visible, VisibleMessage)
    assert visible.sync_target == peer and visible.profile is None  # no profile in the copy
    reaction = sync_copy_of(Reaction(1, peer, "👍"), peer)
    assert isinstance(reaction, Reaction) and reaction.sync_target == peer
    timer = sync_copy_of(DisappearingSettings(ExpiryMode.DELETE_AFTER_SEND, 60), peer)
    assert isinstance(timer, DisappearingSettings) and timer.sync_target == peer
    response = sync_copy_of(MessageRequestResponse(True, profile), peer)
    assert response == MessageRequestResponse(True, None)
    assert sync_copy_of(Unsend(1, peer), peer) == Unsend(1, peer)
    assert sync_copy_of(Typing(True, 1), peer) is None
    assert sync_copy_of(ReadReceipt((1,)), peer) is None


def test_sync_target_survives_the_codec() -> None:
    me, peer = Identity.generate(), Identity.generate()
    keys = MessageKeys.from_seed(me.ed25519_seed)
    for message in (
        Reaction(1, peer.session_id.value, "👍"),
        DisappearingSettings(ExpiryMode.DELETE_AFTER_READ, 30),
    ):
        out = encode_outgoing(
            keys, peer.session_id.value, message, 1_700_000_000_000, 60_000, sync_copy=True
        )
        assert out.sync_data is not None
        copy = decode_direct_message(keys, base64.b64encode(out.sync_data))
        assert getattr(copy.content, "sync_target", None) == peer.session_id.value


async def test_every_synced_kind_reaches_our_swarm_and_carries_the_timer() -> None:
    async with dm_world() as world:
        own, peer_inbox = Inbox(), Inbox()
        settings = {"peer": Expiry(ExpiryMode.DELETE_AFTER_SEND, HOUR_S)}
        me = await world.client(inbox=own, sync_copies=True)
        peer = await world.client(inbox=peer_inbox)
        settings[peer.session_id.value] = settings.pop("peer")
        me.expiry_for = settings.get
        await me.set_profile("Me")

        text = await me.send_text(peer.session_id, "hello")
        await me.send_reaction(peer.session_id, me.session_id, text.timestamp, "👍")
        await me.send_prepared(
            me.prepare_disappearing(peer.session_id, ExpiryMode.DELETE_AFTER_SEND, HOUR_S)
        )
        await me.accept_message_request(peer.session_id)
        await me.send_typing(peer.session_id, True)
        await me.send_read_receipt(peer.session_id, [1])
        await own.wait_count(4)  # before the unsend deletes the text's copy
        await me.send_unsend(peer.session_id, text.timestamp)
        await own.wait_count(5)
        kinds = [type(e.content).__name__ for e in own.messages]
        assert kinds == [
            "VisibleMessage",
            "Reaction",
            "DisappearingSettings",
            "MessageRequestResponse",
            "Unsend",
        ]
        assert all(e.is_sync and e.conversation == peer.session_id for e in own.messages[:3])
        first = own.messages[0].content
        assert isinstance(first, VisibleMessage) and first.profile is None

        await peer_inbox.wait_count(7)
        got = peer_inbox.messages[0].content
        assert isinstance(got, VisibleMessage) and got.profile is not None
        assert got.expiry == Expiry(ExpiryMode.DELETE_AFTER_SEND, HOUR_S)
        assert peer_inbox.messages[1].content.expiry == got.expiry
        assert peer_inbox.messages[4].content.expiry is None  # typing carries no timer
        # Stored with a one-hour TTL (the expiry is the sent time plus the timer).
        stored = await world.snode.retrieve(peer._signer)
        by_hash = {m.hash: m for m in stored.messages}
        kept = by_hash[text.hash]
        assert kept.expiry - text.timestamp == HOUR_S * 1000


async def test_shorten_expiry_of_own_copies() -> None:
    async with dm_world() as world:
        me = await world.client(inbox=Inbox(), sync_copies=True)
        peer = await world.client(start=False)
        sent = await me.send_text(peer.session_id, "read me")
        hashes = me.own_copy_hashes([sent.timestamp, 12345])
        assert hashes == [sent.sync_hash]
        until = int(time.time() * 1000) + 30_000
        await me.shorten_expiry(hashes, until)
        expiries = await world.snode.get_expiries(me._signer, hashes)
        assert abs(expiries[hashes[0]] - until) < 1000
