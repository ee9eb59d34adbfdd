"""1:1 encryption and the direct-message codec (docs/session-protocol.md §3, §2.11), vector
section ``one_to_one``."""

from __future__ import annotations

import base64
import dataclasses

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session import messages as msg
from bridge.session import onetoone as o2o
from bridge.session.envelope import InvalidBase64, MissingEnvelopeContent, encode_stored_message
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.padding import pad_message, pad_message_legacy
from bridge.session.proto import SessionProtos_pb2 as pb
from tests.session.message_strategies import TIMESTAMPS, messages
from tests.vectors import load

VECTOR = load("session-protocol")["one_to_one"]
SENDER = o2o.MessageKeys.from_seed(bytes.fromhex(VECTOR["sender_seed16"]) + bytes(16))
RECIPIENT = o2o.MessageKeys.from_seed(bytes.fromhex(VECTOR["recipient_seed16"]) + bytes(16))
TS = 1_700_000_000_123


def test_vector_keys_match_session_ids() -> None:
    assert SENDER.ed25519_public_key.hex() == VECTOR["sender_ed25519_pubkey"]
    assert SENDER.session_id == VECTOR["sender_session_id"]
    assert RECIPIENT.session_id == VECTOR["recipient_session_id"]


def test_vector_decrypts_and_authenticates_sender() -> None:
    decrypted = o2o.decrypt_incoming(RECIPIENT, bytes.fromhex(VECTOR["ciphertext"]))
    assert decrypted.plaintext == VECTOR["plaintext_utf8"].encode()
    assert decrypted.sender_session_id == VECTOR["sender_session_id"]
    assert decrypted.sender_ed25519_public_key.hex() == VECTOR["sender_ed25519_pubkey"]


def test_vector_reproduced_by_deterministic_variant() -> None:
    # The vector's note only promises the decrypt direction; with the ephemeral-key rule of
    # §3.1 (seed = the 32-byte Ed25519 seed, docs/groups-v2.md §1.11) it reproduces byte for byte.
    recipient = o2o.session_id_to_x25519(VECTOR["recipient_session_id"])
    plaintext = VECTOR["plaintext_utf8"].encode()
    ciphertext = o2o.encrypt_for_recipient_deterministic(SENDER, recipient, plaintext)
    assert ciphertext.hex() == VECTOR["ciphertext"]


def test_vector_is_not_for_the_sender() -> None:
    with pytest.raises(o2o.DecryptionFailed):
        o2o.decrypt_incoming(SENDER, bytes.fromhex(VECTOR["ciphertext"]))


def test_sealed_layout_is_message_sender_key_signature() -> None:
    ciphertext = o2o.encrypt_for_recipient(SENDER, RECIPIENT.x25519_public_key, b"M" * 160)
    assert len(ciphertext) == 160 + 32 + 64 + 48  # §3.1 step 3
    inner = sodium.crypto_box_seal_open(
        ciphertext, RECIPIENT.x25519_public_key, RECIPIENT.x25519_private_key
    )
    assert inner[:160] == b"M" * 160
    assert inner[160:192] == SENDER.ed25519_public_key
    signed = b"M" * 160 + SENDER.ed25519_public_key + RECIPIENT.x25519_public_key
    sodium.crypto_sign_open(inner[192:] + signed, SENDER.ed25519_public_key)


@given(st.binary(max_size=400))
def test_encrypt_decrypt_round_trip(plaintext: bytes) -> None:
    ciphertext = o2o.encrypt_for_recipient(SENDER, RECIPIENT.x25519_public_key, plaintext)
    if plaintext:
        decrypted = o2o.decrypt_incoming(RECIPIENT, ciphertext)
        assert decrypted == (SENDER.session_id, SENDER.ed25519_public_key, plaintext)
    else:  # nothing but sender key and signature: refused as too short
        with pytest.raises(o2o.DecryptionFailed):
            o2o.decrypt_incoming(RECIPIENT, ciphertext)


@given(st.binary(min_size=1, max_size=400))
def test_deterministic_variant_round_trips_and_is_deterministic(plaintext: bytes) -> None:
    first = o2o.encrypt_for_recipient_deterministic(SENDER, RECIPIENT.x25519_public_key, plaintext)
    again = o2o.encrypt_for_recipient_deterministic(SENDER, RECIPIENT.x25519_public_key, plaintext)
    assert first == again
    assert o2o.decrypt_incoming(RECIPIENT, first).plaintext == plaintext


@given(st.binary(max_size=400))
def test_decrypt_incoming_random_bytes_give_typed_errors(ciphertext: bytes) -> None:
    with pytest.raises(SessionError):
        o2o.decrypt_incoming(RECIPIENT, ciphertext)


def test_decrypt_incoming_truncations_give_typed_errors() -> None:
    ciphertext = o2o.encrypt_for_recipient(SENDER, RECIPIENT.x25519_public_key, b"x" * 160)
    for cut in range(len(ciphertext)):
        with pytest.raises(SessionError):
            o2o.decrypt_incoming(RECIPIENT, ciphertext[:cut])


def _seal_inner(inner: bytes) -> bytes:
    return sodium.crypto_box_seal(inner, RECIPIENT.x25519_public_key)


def test_bad_signature_is_detected() -> None:
    good = sodium.crypto_box_seal_open(
        o2o.encrypt_for_recipient(SENDER, RECIPIENT.x25519_public_key, b"hello"),
        RECIPIENT.x25519_public_key,
        RECIPIENT.x25519_private_key,
    )
    forged = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(o2o.BadSignature):
        o2o.decrypt_incoming(RECIPIENT, _seal_inner(forged))
    # A signature made for someone else (recipient key is part of the signed data) fails too.
    for_sender = sodium.crypto_box_seal_open(
        o2o.encrypt_for_recipient(SENDER, SENDER.x25519_public_key, b"hello"),
        SENDER.x25519_public_key,
        SENDER.x25519_private_key,
    )
    with pytest.raises(o2o.BadSignature):
        o2o.decrypt_incoming(RECIPIENT, _seal_inner(for_sender))
    # A sender key that is not a valid point.
    with pytest.raises(o2o.BadSignature):
        o2o.decrypt_incoming(RECIPIENT, _seal_inner(b"hello" + b"\xff" * 32 + bytes(64)))


def test_inner_too_short_is_decryption_failure() -> None:
    with pytest.raises(o2o.DecryptionFailed):
        o2o.decrypt_incoming(RECIPIENT, _seal_inner(bytes(96)))
    with pytest.raises(o2o.DecryptionFailed):
        o2o.decrypt_incoming(RECIPIENT, b"short")


@settings(max_examples=60)
@given(messages, TIMESTAMPS)
def test_direct_message_round_trip(message: msg.Message, timestamp: int) -> None:
    data = o2o.encode_direct_message(SENDER, RECIPIENT.session_id, message, timestamp)
    decoded = o2o.decode_direct_message(RECIPIENT, data)
    assert decoded.sender_session_id == SENDER.session_id
    assert decoded.timestamp == timestamp
    assert decoded.content == dataclasses.replace(message, sig_timestamp=timestamp)


def test_typical_message_and_raw_secret_key() -> None:
    message = msg.VisibleMessage(body="hi there", profile=msg.Profile("Bridge bot"))
    data = o2o.encode_direct_message(SENDER.ed25519_secret_key, RECIPIENT.session_id, message, TS)
    sender, timestamp, content = o2o.decode_direct_message(RECIPIENT.ed25519_secret_key, data)
    assert (sender, timestamp) == (SENDER.session_id, TS)
    assert content == dataclasses.replace(message, sig_timestamp=TS)


def _store_content(content: pb.Content, timestamp: int, *, legacy_padding: bool = False) -> str:
    padded = (pad_message_legacy if legacy_padding else pad_message)(content.SerializeToString())
    ciphertext = o2o.encrypt_for_recipient(SENDER, RECIPIENT.x25519_public_key, padded)
    return encode_stored_message(ciphertext, timestamp)


def test_timestamp_rule() -> None:
    content = pb.Content(sigTimestamp=TS + 1)
    content.dataMessage.body = "x"
    with pytest.raises(o2o.TimestampMismatch):
        o2o.decode_direct_message(RECIPIENT, _store_content(content, TS))
    # No sigTimestamp (older clients): accepted, the envelope timestamp is authoritative.
    content.ClearField("sigTimestamp")
    decoded = o2o.decode_direct_message(
        RECIPIENT, _store_content(content, TS, legacy_padding=True)
    )
    assert decoded.timestamp == TS
    assert decoded.content == msg.VisibleMessage(body="x")


def test_size_limits() -> None:
    with pytest.raises(o2o.MessageTooLarge):
        o2o.decode_direct_message(RECIPIENT, "A" * (o2o.MAX_STORED_MESSAGE_CHARS + 4))
    huge = msg.VisibleMessage(body="x" * 60_000)
    with pytest.raises(o2o.OutgoingMessageTooLarge):
        o2o.encode_direct_message(SENDER, RECIPIENT.session_id, huge, TS)


@pytest.mark.parametrize(
    "recipient", ["", "05" + "aa" * 31, "03" + "aa" * 32, "05" + "zz" * 32, "05" + "aa" * 33]
)
def test_invalid_recipient(recipient: str) -> None:
    with pytest.raises(o2o.InvalidKey):
        o2o.encode_direct_message(SENDER, recipient, msg.VisibleMessage(body="x"), TS)


@pytest.mark.parametrize("timestamp", [0, -5, 2**64])
def test_invalid_timestamp(timestamp: int) -> None:
    with pytest.raises(InvalidInput):
        o2o.encode_direct_message(SENDER, RECIPIENT.session_id, msg.Typing(True, 1), timestamp)


def test_invalid_keys() -> None:
    with pytest.raises(o2o.InvalidKey):
        o2o.MessageKeys.from_seed(b"short")
    with pytest.raises(o2o.InvalidKey):
        o2o.decode_direct_message(b"\x00" * 32, "AAAA")


def test_secret_keys_stay_out_of_repr() -> None:
    text = repr(SENDER)
    assert SENDER.session_id in text
    for secret in (SENDER.ed25519_secret_key, SENDER.x25519_private_key):
        assert secret.hex() not in text and repr(secret) not in text


def test_empty_envelope_content_is_a_typed_error() -> None:
    raw = base64.b64decode(encode_stored_message(b"x", TS))
    wrapper = pb.WebSocketMessage.FromString(raw)
    envelope = pb.Envelope.FromString(wrapper.request.body)
    envelope.ClearField("content")
    wrapper.request.body = envelope.SerializePartialToString()
    with pytest.raises(MissingEnvelopeContent):
        o2o.decode_direct_message(RECIPIENT, base64.b64encode(wrapper.SerializeToString()))


@given(st.binary(max_size=400))
def test_random_bytes_give_typed_errors(data: bytes) -> None:
    with pytest.raises(SessionError):
        o2o.decode_direct_message(RECIPIENT, base64.b64encode(data))


@given(st.text(max_size=200))
def test_random_text_gives_typed_errors(data: str) -> None:
    with pytest.raises(SessionError):
        o2o.decode_direct_message(RECIPIENT, data)


def test_truncations_and_bit_flips_give_typed_errors() -> None:
    message = msg.VisibleMessage(body="truncate me", profile=msg.Profile("T"))
    data = o2o.encode_direct_message(SENDER, RECIPIENT.session_id, message, TS)
    raw = base64.b64decode(data)
    for cut in range(len(raw)):
        with pytest.raises(SessionError):
            o2o.decode_direct_message(RECIPIENT, base64.b64encode(raw[:cut]))
    for cut in range(len(data)):
        with pytest.raises(SessionError):
            o2o.decode_direct_message(RECIPIENT, data[:cut])
    for position in range(0, len(raw), 7):
        flipped = bytearray(raw)
        flipped[position] ^= 0x10
        try:
            decoded = o2o.decode_direct_message(RECIPIENT, base64.b64encode(bytes(flipped)))
        except SessionError:
            continue
        # Flips in fields the receiver ignores (wrapper id, sourceDevice...) are harmless: what
        # is decoded is still exactly what the sender signed.
        assert decoded == (SENDER.session_id, TS, dataclasses.replace(message, sig_timestamp=TS))


def test_bad_base64_is_typed() -> None:
    with pytest.raises(InvalidBase64):
        o2o.decode_direct_message(RECIPIENT, "%%%")
