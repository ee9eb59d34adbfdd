"""Interop with session-python 1.0.5, an independent Session client (test-only oracle).

Only its pure functions are called (keys, sealed box, padding, protobuf framing); nothing
touches the network. It pads the old-desktop way (§2.12), does not set ``sigTimestamp`` and
uses the ``verb="PUT"``/``path="/api/v1/message"`` wrapper, so it also exercises the
tolerance of our receive path.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_python import crypto as sp  # type: ignore[import-untyped]
from session_python.protobuf import signalservice_pb2 as sp_pb  # type: ignore[import-untyped]

from bridge.session import messages as msg
from bridge.session import onetoone as o2o
from bridge.session.padding import pad_message_legacy
from tests.vectors import load

OUR_SEED = bytes.fromhex("00112233445566778899aabbccddeeff") + bytes(16)
THEIR_SEED_HEX = "0123456789abcdef0123456789abcdef"
TS = 1_717_171_717_171


@pytest.fixture(scope="module")
def ours() -> o2o.MessageKeys:
    return o2o.MessageKeys.from_seed(OUR_SEED)


@pytest.fixture(scope="module")
def theirs() -> sp.SessionKeys:
    return sp.SessionKeys(THEIR_SEED_HEX)


def _their_session_id(keys: sp.SessionKeys) -> str:
    public_key: bytes = keys.x25519.public_key  # 0x05-prefixed, 33 bytes
    return "05" + public_key[1:].hex()


def _their_send(sender: sp.SessionKeys, recipient: str, content: sp_pb.Content, ts: int) -> str:
    """session-python's send path without the network (client.py send_message)."""
    padded = sp.add_message_padding(content.SerializeToString())
    ciphertext = sp.encrypt_using_session_protocol(sender, recipient, padded)
    envelope = sp_pb.Envelope(
        type=sp_pb.Envelope.SESSION_MESSAGE, timestamp=ts, content=ciphertext
    )
    return base64.b64encode(sp.wrap_envelope(envelope.SerializeToString())).decode()


def _their_receive(recipient: sp.SessionKeys, data: str) -> tuple[str, int, sp_pb.Content]:
    """session-python's receive path without the network (polling.py Poller.poll)."""
    wrapper = sp_pb.WebSocketMessage.FromString(base64.b64decode(data))
    assert wrapper.type == sp_pb.WebSocketMessage.Type.REQUEST
    envelope = sp_pb.Envelope.FromString(wrapper.request.body)
    plaintext, sender = sp.decrypt_with_session_protocol(recipient, envelope.content)
    content = sp_pb.Content.FromString(sp.remove_message_padding(plaintext))
    return sender, envelope.timestamp, content


def test_both_sides_derive_the_same_session_ids(
    ours: o2o.MessageKeys, theirs: sp.SessionKeys
) -> None:
    vectors = load("session-protocol")["one_to_one"]
    assert _their_session_id(theirs) == vectors["sender_session_id"]
    assert ours.session_id == vectors["recipient_session_id"]


def test_their_text_message_decodes(ours: o2o.MessageKeys, theirs: sp.SessionKeys) -> None:
    content = sp_pb.Content()
    content.dataMessage.body = "hello from session-python ✓"
    content.dataMessage.timestamp = TS
    content.dataMessage.profile.displayName = "Oracle"
    data = _their_send(theirs, ours.session_id, content, TS)
    sender, timestamp, message = o2o.decode_direct_message(ours, data)
    assert sender == _their_session_id(theirs)
    assert timestamp == TS
    assert message == msg.VisibleMessage(
        body="hello from session-python ✓", profile=msg.Profile("Oracle")
    )


def test_their_control_messages_decode(ours: o2o.MessageKeys, theirs: sp.SessionKeys) -> None:
    author = ours.session_id
    reaction = sp_pb.Content()
    reaction.dataMessage.reaction.id = 42
    reaction.dataMessage.reaction.author = author
    reaction.dataMessage.reaction.emoji = "🎉"
    reaction.dataMessage.reaction.action = sp_pb.DataMessage.Reaction.Action.REACT
    unsend = sp_pb.Content()
    unsend.unsendMessage.timestamp = 42
    unsend.unsendMessage.author = author
    typing = sp_pb.Content()
    typing.typingMessage.timestamp = TS
    typing.typingMessage.action = sp_pb.TypingMessage.Action.STARTED
    receipt = sp_pb.Content()
    receipt.receiptMessage.type = sp_pb.ReceiptMessage.Type.READ
    receipt.receiptMessage.timestamp.extend([41, 42])
    expected = [
        msg.Reaction(42, author, "🎉"),
        msg.Unsend(42, author),
        msg.Typing(True, TS),
        msg.ReadReceipt((41, 42)),
    ]
    for content, message in zip((reaction, unsend, typing, receipt), expected, strict=True):
        decoded = o2o.decode_direct_message(ours, _their_send(theirs, author, content, TS))
        assert decoded.content == message


def test_our_message_decodes_in_session_python(
    ours: o2o.MessageKeys, theirs: sp.SessionKeys
) -> None:
    message = msg.VisibleMessage(
        body="hello from the bridge",
        profile=msg.Profile("Bridge", "http://f/file/7", b"\x07" * 32),
        quote=msg.Quote(41, _their_session_id(theirs)),
    )
    data = o2o.encode_direct_message(ours, _their_session_id(theirs), message, TS)
    sender, timestamp, content = _their_receive(theirs, data)
    assert sender == ours.session_id
    assert timestamp == TS
    assert content.dataMessage.body == "hello from the bridge"
    assert content.dataMessage.profile.displayName == "Bridge"
    assert content.dataMessage.profile.profilePicture == "http://f/file/7"
    assert content.dataMessage.profileKey == b"\x07" * 32
    assert content.dataMessage.quote.id == 41


def test_our_control_messages_decode_in_session_python(
    ours: o2o.MessageKeys, theirs: sp.SessionKeys
) -> None:
    recipient = _their_session_id(theirs)
    unsend = o2o.encode_direct_message(ours, recipient, msg.Unsend(9, ours.session_id), TS)
    assert _their_receive(theirs, unsend)[2].unsendMessage.timestamp == 9
    typing = o2o.encode_direct_message(ours, recipient, msg.Typing(False, TS), TS)
    assert _their_receive(theirs, typing)[2].typingMessage.action == 1
    accept = o2o.encode_direct_message(ours, recipient, msg.MessageRequestResponse(True), TS)
    assert _their_receive(theirs, accept)[2].messageRequestResponse.isApproved


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=2**63))
def test_text_round_trips_both_ways(body: str, timestamp: int) -> None:
    ours = o2o.MessageKeys.from_seed(OUR_SEED)
    theirs = sp.SessionKeys(THEIR_SEED_HEX)
    data = o2o.encode_direct_message(
        ours, _their_session_id(theirs), msg.VisibleMessage(body=body), timestamp
    )
    assert _their_receive(theirs, data)[2].dataMessage.body == body
    content = sp_pb.Content()
    content.dataMessage.body = body
    reply = _their_send(theirs, ours.session_id, content, timestamp)
    assert o2o.decode_direct_message(ours, reply).content == msg.VisibleMessage(body=body)


def test_their_sealed_box_opens_with_our_low_level_api(
    ours: o2o.MessageKeys, theirs: sp.SessionKeys
) -> None:
    padded = pad_message_legacy(b"raw")
    ciphertext = sp.encrypt_using_session_protocol(theirs, ours.session_id, padded)
    decrypted = o2o.decrypt_incoming(ours, ciphertext)
    assert decrypted.plaintext == padded
    assert decrypted.sender_ed25519_public_key == theirs.ed25519.public_key
    ours_ct = o2o.encrypt_for_recipient(ours, theirs.x25519.public_key[1:], padded)
    plaintext, sender = sp.decrypt_with_session_protocol(theirs, ours_ct)
    assert (plaintext, sender) == (padded, ours.session_id)
