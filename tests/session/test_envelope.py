"""Envelope and WebSocket wrapper (docs/session-protocol.md §2.2, §2.3)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session import envelope as env
from bridge.session.errors import DecodeError
from bridge.session.proto import SessionProtos_pb2 as pb
from tests.vectors import load

TIMESTAMPS = st.integers(min_value=1, max_value=2**64 - 1)


def _stored(envelope: pb.Envelope | bytes, *, wrap: bool = True) -> str:
    raw = envelope if isinstance(envelope, bytes) else envelope.SerializePartialToString()
    if wrap:
        raw = env.wrap_websocket(raw)
    return base64.b64encode(raw).decode()


@given(st.binary(min_size=1, max_size=500), TIMESTAMPS)
def test_stored_message_round_trips(content: bytes, timestamp: int) -> None:
    decoded = env.decode_stored_message(env.encode_stored_message(content, timestamp))
    assert decoded == env.Envelope(env.SESSION_MESSAGE, timestamp, content)


def test_layout_is_wrapper_request_with_type_6_envelope() -> None:
    data = env.encode_stored_message(b"ciphertext", 1616650861885)
    wrapper = pb.WebSocketMessage.FromString(base64.b64decode(data))
    assert wrapper.type == pb.WebSocketMessage.REQUEST
    assert wrapper.request.id == 0
    envelope = pb.Envelope.FromString(wrapper.request.body)
    assert envelope.type == pb.Envelope.SESSION_MESSAGE == 6
    assert envelope.timestamp == 1616650861885
    assert envelope.sourceDevice == 1
    assert envelope.content == b"ciphertext"
    assert not envelope.HasField("source")


def test_real_desktop_wire_sample_decodes() -> None:
    # §3.4/§8.6: an old-desktop 1:1 message (verb PUT, path /api/v1/message, 159-byte padding).
    sample = load("session-protocol")["storage_hash"]["data_b64"]
    decoded = env.decode_stored_message(sample)
    assert decoded.type == env.SESSION_MESSAGE
    assert decoded.timestamp == 1616650861885
    assert len(decoded.content) == 303 == 48 + 159 + 32 + 64


def test_pro_signature_and_unknown_fields_are_ignored() -> None:
    envelope = pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, timestamp=5, content=b"c")
    envelope.proSig = b"\x07" * 64
    raw = envelope.SerializeToString() + bytes.fromhex("f80601")  # unknown field 111
    assert env.decode_stored_message(_stored(raw)) == env.Envelope(6, 5, b"c")


@pytest.mark.parametrize("data", ["not base64!", "YWJ", "AA=A", "AAAA\n", "é", b"\xff\xfe"])
def test_bad_base64(data: str | bytes) -> None:
    with pytest.raises(env.InvalidBase64):
        env.decode_stored_message(data)


def test_bad_protobuf() -> None:
    with pytest.raises(env.MalformedEnvelope):
        env.decode_stored_message(base64.b64encode(b"\x12\x09abc").decode())
    with pytest.raises(env.MalformedEnvelope):
        env.decode_stored_message(_stored(b"\x0a\x09abc"))


def test_unwrapped_envelope_is_refused() -> None:
    bare = pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, timestamp=5, content=b"c")
    with pytest.raises(env.MalformedEnvelope, match="no request body"):
        env.decode_stored_message(_stored(bare, wrap=False))


def test_type_not_enforced_on_receive() -> None:
    # docs/session-protocol.md §2.2: the namespace, not the envelope type, says what it is.
    group = pb.Envelope(type=pb.Envelope.CLOSED_GROUP_MESSAGE, timestamp=5, content=b"c")
    assert env.decode_stored_message(_stored(group)) == env.Envelope(7, 5, b"c")
    # A caller that asks for a type still gets the check.
    with pytest.raises(env.WrongEnvelopeType):
        env.decode_envelope(group.SerializeToString(), env.SESSION_MESSAGE)
    assert env.decode_envelope(group.SerializeToString(), env.CLOSED_GROUP_MESSAGE).content == b"c"


def test_missing_content_and_required_fields() -> None:
    with pytest.raises(env.MissingEnvelopeContent):
        env.decode_stored_message(
            _stored(pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, timestamp=5))
        )
    with pytest.raises(env.MissingEnvelopeContent):
        env.decode_stored_message(
            _stored(pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, timestamp=5, content=b""))
        )
    with pytest.raises(env.MalformedEnvelope):
        env.decode_stored_message(
            _stored(pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, content=b"c"))
        )
    with pytest.raises(env.MalformedEnvelope):
        env.decode_stored_message(_stored(pb.Envelope(timestamp=5, content=b"c")))


@pytest.mark.parametrize("timestamp", [0, -1, 2**64])
def test_encode_refuses_bad_timestamps(timestamp: int) -> None:
    with pytest.raises(env.InvalidEnvelopeInput):
        env.encode_stored_message(b"c", timestamp)


@given(st.binary(max_size=300))
def test_random_bytes_give_typed_errors(data: bytes) -> None:
    try:
        env.decode_stored_message(base64.b64encode(data))
    except DecodeError:
        return
    # The rare random input that is a valid wrapped type-6 envelope must decode faithfully.
    inner = pb.WebSocketMessage.FromString(data).request.body
    assert pb.Envelope.FromString(inner).type == 6


@given(st.text(max_size=120))
def test_random_text_gives_typed_errors(data: str) -> None:
    with pytest.raises(DecodeError):
        env.decode_stored_message(data)


@given(st.binary(min_size=1, max_size=200), TIMESTAMPS)
def test_truncated_messages_give_typed_errors(content: bytes, timestamp: int) -> None:
    raw = base64.b64decode(env.encode_stored_message(content, timestamp))
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            env.decode_stored_message(base64.b64encode(raw[:cut]))
