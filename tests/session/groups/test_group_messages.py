"""Group messages of namespace 11 (docs/groups-v2.md §4.1, §4.2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session.envelope import (
    CLOSED_GROUP_MESSAGE,
    SESSION_MESSAGE,
    encode_envelope,
)
from bridge.session.errors import SessionError
from bridge.session.groups import bencode
from bridge.session.groups.group_messages import (
    MAX_PLAINTEXT,
    BadSenderSignature,
    MalformedGroupMessage,
    NoMatchingKey,
    TimestampMismatch,
    decrypt_group_data,
    decrypt_group_message,
    encrypt_group_data,
    encrypt_group_message,
    padded_length,
)
from bridge.session.groups.multi_encrypt import aead_decrypt, aead_encrypt
from bridge.session.keys import Identity, verify_ed25519
from bridge.session.messages import VisibleMessage, content_to_proto
from bridge.session.padding import pad_message
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
FIXED: dict[str, Any] = CASES["group_message_uncompressed_fixed_nonce"]
SIZES: dict[str, Any] = CASES["encrypt_message_sizes"]

SENDER = Identity.from_seed(bytes.fromhex(FIXED["sender_seed"]))
GROUP_PK = bytes.fromhex(FIXED["group_ed25519_pubkey"])
KEY = bytes.fromhex(FIXED["group_enc_key"])
OTHER_KEY = bytes(range(32))
NONCE = bytes(24)
TS = 1700000000123


def _seal(fields: dict[bytes, bencode.BValue], key: bytes = KEY, pad: int = 0) -> bytes:
    """Encrypt a hand-made inner dict (to test the receiver's checks)."""
    return NONCE + aead_encrypt(bencode.encode(fields) + bytes(pad), NONCE, key)


def _signed_fields(body: bytes, tag: bytes = b"d", group_pk: bytes = GROUP_PK) -> dict[bytes, Any]:
    signature = SENDER.sign(body + group_pk)
    return {b"": 1, b"a": SENDER.ed25519_public, tag: body, b"s": signature}


# ------------------------------------------------------------------ vectors


def test_vector_encrypt_message_sizes() -> None:
    # Upstream: "hello to all my friends sitting in the tomato sauce" doubled 5 times.
    plaintext = b"hello to all my friends sitting in the tomato sauce" * 2**5
    assert len(plaintext) == 1632
    compressed = encrypt_group_data(SENDER, GROUP_PK, KEY, plaintext)
    uncompressed = encrypt_group_data(SENDER, GROUP_PK, KEY, plaintext, compress=False)
    assert len(compressed) == SIZES["expected_len_compressed"] == 256
    assert len(uncompressed) == SIZES["expected_len_uncompressed"] == 2048
    for ciphertext in (compressed, uncompressed):
        assert decrypt_group_data(ciphertext, [KEY], GROUP_PK).data == plaintext


def test_vector_uncompressed_fixed_nonce() -> None:
    ciphertext = encrypt_group_data(
        SENDER,
        GROUP_PK,
        KEY,
        bytes.fromhex(FIXED["plaintext"]),
        compress=False,
        nonce=bytes.fromhex(FIXED["nonce"]),
    )
    assert ciphertext.hex() == FIXED["expected_ciphertext"]
    inner = decrypt_group_data(bytes.fromhex(FIXED["expected_ciphertext"]), [KEY], GROUP_PK)
    assert inner.sender.value == FIXED["expected_sender_session_id"]
    assert inner.sender_ed25519 == SENDER.ed25519_public
    assert inner.data.hex() == FIXED["plaintext"]


# ------------------------------------------------------------------ risk #1 and #3


def test_risk1_signature_covers_data_and_group_pubkey() -> None:
    ciphertext = bytes.fromhex(FIXED["expected_ciphertext"])
    plain = aead_decrypt(ciphertext[24:], ciphertext[:24], KEY)
    assert plain is not None
    fields = bencode.decode_dict(plain.rstrip(b"\0"))
    body, signature = fields[b"d"], fields[b"s"]
    assert isinstance(body, bytes) and isinstance(signature, bytes)
    verify_ed25519(SENDER.ed25519_public, body + GROUP_PK, signature)
    # Pre-Feb-2025 senders signed only the data: refused now.
    old_style = {**_signed_fields(body), b"s": SENDER.sign(body)}
    with pytest.raises(BadSenderSignature):
        decrypt_group_data(_seal(old_style), [KEY], GROUP_PK)
    # Another group's key appended: refused too.
    with pytest.raises(BadSenderSignature):
        decrypt_group_data(ciphertext, [KEY], bytes(32))


def test_risk3_suffix_zero_padding_to_256() -> None:
    for size in (1, 50, 177, 178, 200, 1000, 5000):
        ciphertext = encrypt_group_data(SENDER, GROUP_PK, KEY, b"\x01" * size, compress=False)
        assert len(ciphertext) % 256 == 0
        plain = aead_decrypt(ciphertext[24:], ciphertext[:24], KEY)
        assert plain is not None and plain.startswith(b"d")
        assert len(plain) == padded_length(len(plain.rstrip(b"\0")))
    assert [padded_length(n) for n in (1, 216, 217, 472)] == [216, 216, 472, 472]


# ------------------------------------------------------------------ keys


def test_every_key_is_tried_and_the_right_one_reported() -> None:
    ciphertext = encrypt_group_data(SENDER, GROUP_PK, KEY, b"payload")
    inner = decrypt_group_data(ciphertext, [OTHER_KEY, bytes(32), KEY], GROUP_PK)
    assert inner.key == KEY and inner.data == b"payload"
    with pytest.raises(NoMatchingKey):
        decrypt_group_data(ciphertext, [OTHER_KEY], GROUP_PK)
    with pytest.raises(NoMatchingKey):
        decrypt_group_data(ciphertext, [], GROUP_PK)


# ------------------------------------------------------------------ full messages


def test_message_round_trip_sets_sig_timestamp() -> None:
    message = VisibleMessage(body="hello group")
    ciphertext = encrypt_group_message(SENDER, GROUP_PK, KEY, message, TS)
    received = decrypt_group_message(ciphertext, [OTHER_KEY, KEY], GROUP_PK)
    assert received.sender == SENDER.session_id
    assert received.timestamp == TS
    assert received.content == dataclasses.replace(message, sig_timestamp=TS)
    assert received.key == KEY


def _envelope_ciphertext(content: bytes, envelope_type: int = CLOSED_GROUP_MESSAGE) -> bytes:
    envelope = encode_envelope(content, TS, envelope_type)
    return encrypt_group_data(SENDER, GROUP_PK, KEY, envelope)


def test_padded_content_is_accepted() -> None:
    content = content_to_proto(VisibleMessage(body="old client", sig_timestamp=TS))
    received = decrypt_group_message(_envelope_ciphertext(pad_message(content)), [KEY], GROUP_PK)
    assert isinstance(received.content, VisibleMessage)
    assert received.content.body == "old client"


def test_sig_timestamp_must_match_envelope() -> None:
    content = content_to_proto(VisibleMessage(body="x", sig_timestamp=TS + 1))
    with pytest.raises(TimestampMismatch):
        decrypt_group_message(_envelope_ciphertext(content), [KEY], GROUP_PK)


def test_envelope_type_not_enforced_on_receive() -> None:
    content = content_to_proto(VisibleMessage(body="x", sig_timestamp=TS))
    message = decrypt_group_message(
        _envelope_ciphertext(content, SESSION_MESSAGE), [KEY], GROUP_PK
    )
    assert message.timestamp == TS
    assert message.content.body == "x"  # type: ignore[union-attr]


def test_data_that_is_no_envelope() -> None:
    ciphertext = encrypt_group_data(SENDER, GROUP_PK, KEY, b"\xff\xff\xff")
    with pytest.raises(SessionError):
        decrypt_group_message(ciphertext, [KEY], GROUP_PK)


# ------------------------------------------------------------------ inner dict checks


@pytest.mark.parametrize(
    "change",
    [
        {b"": 2},
        {b"": b"1"},
        {b"a": bytes(31)},
        {b"s": bytes(63)},
        {b"z": b"compressed too"},
        {b"d": b""},
    ],
)
def test_malformed_inner_dicts(change: dict[bytes, Any]) -> None:
    with pytest.raises(MalformedGroupMessage):
        decrypt_group_data(_seal({**_signed_fields(b"data"), **change}), [KEY], GROUP_PK)


@pytest.mark.parametrize("missing", [b"", b"a", b"d", b"s"])
def test_missing_inner_fields(missing: bytes) -> None:
    fields = {k: v for k, v in _signed_fields(b"data").items() if k != missing}
    with pytest.raises(MalformedGroupMessage):
        decrypt_group_data(_seal(fields), [KEY], GROUP_PK)


def test_sender_key_without_x25519_form() -> None:
    fields = {**_signed_fields(b"data"), b"a": bytes([2]) + bytes(31)}
    with pytest.raises(SessionError):
        decrypt_group_data(_seal(fields), [KEY], GROUP_PK)


def test_not_bencoded_plaintext() -> None:
    with pytest.raises(MalformedGroupMessage):
        decrypt_group_data(NONCE + aead_encrypt(b"hello", NONCE, KEY), [KEY], GROUP_PK)


# ------------------------------------------------------------------ zstd (risk #12)


def test_streamed_zstd_frame_without_content_size() -> None:
    data = b"a streamed frame " * 200
    body = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(data)
    inner = decrypt_group_data(_seal(_signed_fields(body, b"z")), [KEY], GROUP_PK)
    assert inner.data == data


def test_zstd_over_one_megabyte_is_refused() -> None:
    bomb = zstandard.ZstdCompressor(level=1).compress(bytes(MAX_PLAINTEXT + 1))
    with pytest.raises(MalformedGroupMessage):
        decrypt_group_data(_seal(_signed_fields(bomb, b"z")), [KEY], GROUP_PK)
    exact = zstandard.ZstdCompressor(level=1).compress(bytes(MAX_PLAINTEXT))
    assert len(decrypt_group_data(_seal(_signed_fields(exact, b"z")), [KEY], GROUP_PK).data) == (
        MAX_PLAINTEXT
    )


def test_bad_zstd_data() -> None:
    with pytest.raises(MalformedGroupMessage):
        decrypt_group_data(_seal(_signed_fields(b"not zstd", b"z")), [KEY], GROUP_PK)


def test_plaintext_limits() -> None:
    with pytest.raises(SessionError):
        encrypt_group_data(SENDER, GROUP_PK, KEY, b"")
    with pytest.raises(SessionError):
        encrypt_group_data(SENDER, GROUP_PK, KEY, bytes(MAX_PLAINTEXT + 1))
    with pytest.raises(SessionError):
        encrypt_group_data(SENDER, GROUP_PK, KEY, b"x", nonce=b"short")


# ------------------------------------------------------------------ properties and fuzzing


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), compress=st.booleans())
def test_round_trip(data: bytes, compress: bool) -> None:
    ciphertext = encrypt_group_data(SENDER, GROUP_PK, KEY, data, compress=compress)
    assert len(ciphertext) % 256 == 0
    inner = decrypt_group_data(ciphertext, [OTHER_KEY, KEY], GROUP_PK)
    assert inner.data == data and inner.sender == SENDER.session_id


@settings(max_examples=30, deadline=None)
@given(body=st.text(min_size=1, max_size=500), timestamp=st.integers(1, 2**63))
def test_message_round_trip_property(body: str, timestamp: int) -> None:
    ciphertext = encrypt_group_message(SENDER, GROUP_PK, KEY, VisibleMessage(body=body), timestamp)
    received = decrypt_group_message(ciphertext, [KEY], GROUP_PK)
    assert received.content == VisibleMessage(body=body, sig_timestamp=timestamp)
    assert received.timestamp == timestamp


@given(st.binary(max_size=600))
def test_random_ciphertext_gives_typed_errors(data: bytes) -> None:
    with pytest.raises(SessionError):
        decrypt_group_message(data, [KEY], GROUP_PK)


@given(st.binary(max_size=400))
def test_random_plaintext_under_the_right_key_gives_typed_errors(plain: bytes) -> None:
    ciphertext = NONCE + aead_encrypt(plain, NONCE, KEY)
    with pytest.raises(SessionError):
        decrypt_group_message(ciphertext, [KEY], GROUP_PK)


def test_truncated_ciphertext_gives_typed_errors() -> None:
    ciphertext = bytes.fromhex(FIXED["expected_ciphertext"])
    for end in range(len(ciphertext)):
        with pytest.raises(SessionError):
            decrypt_group_data(ciphertext[:end], [KEY], GROUP_PK)
