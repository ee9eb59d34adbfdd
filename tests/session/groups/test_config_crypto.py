"""Config padding, zstd and ``config::encrypt`` (docs/groups-v2.md §1.7, §1.8; risks #3, #4,
#12)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

import nacl.bindings as sodium
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session.errors import InvalidInput, SessionError
from bridge.session.groups import config_crypto as cc
from bridge.session.groups.bencode import encode
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
ENC = CASES["config_encrypt"]
KEY_BASE = bytes.fromhex(ENC["key_base"])
MESSAGE = ENC["message_ascii"].encode()


def test_config_encrypt_upstream_vector() -> None:
    out = cc.encrypt(MESSAGE, KEY_BASE, ENC["domain_ascii"].encode())
    assert out.hex() == ENC["expected"]
    assert len(out) == len(MESSAGE) + cc.OVERHEAD
    assert cc.decrypt(out, KEY_BASE, ENC["domain_ascii"].encode()) == MESSAGE


def test_config_encrypt_nonce_depends_on_message_and_domain_only() -> None:
    other_domain = cc.encrypt(MESSAGE, KEY_BASE, b"test-suite2")
    assert other_domain[-24:].hex() == ENC["expected_nonce_same_key_domain_test_suite2"]
    key2 = bytes.fromhex("0123456789abcdef" * 4)
    other_key = cc.encrypt(MESSAGE, key2, b"test-suite1")
    assert other_key[-24:].hex() == ENC["expected_nonce_key2_test_suite1"]
    assert other_key[:-24] != bytes.fromhex(ENC["expected"])[:-24]


def test_risk4_key_uses_length_and_nonce_uses_libsessionutil_prefix() -> None:
    # §10.2 #4: the key binds the (padded) plaintext length; the nonce key is
    # "libsessionutil-config-encrypted-" + domain, not the merge doc's nonce-hash key.
    domain = b"groups::Info"
    plain = cc.pad(b"d1:#i1ee")
    out = cc.encrypt(plain, KEY_BASE, domain)
    nonce = hashlib.blake2b(
        plain, key=b"libsessionutil-config-encrypted-" + domain, digest_size=24
    ).digest()
    doc_nonce = hashlib.blake2b(
        plain, key=b"libsession-config-nonce-hash-key", digest_size=24
    ).digest()
    assert out[-24:] == nonce != doc_nonce
    key = hashlib.blake2b(
        KEY_BASE + len(plain).to_bytes(8, "big") + domain, digest_size=32
    ).digest()
    assert sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out[:-24], None, nonce, key) == plain
    # The same ciphertext with one byte dropped implies another length, hence another key.
    with pytest.raises(cc.ConfigCryptoError):
        cc.decrypt(out[:-25] + out[-24:], KEY_BASE, domain)


@pytest.mark.parametrize(("size", "overhead", "expected"), CASES["padded_size"]["cases"])
def test_padded_size_upstream(size: int, overhead: int, expected: int) -> None:
    assert cc.padded_size(size, overhead) == expected


def test_risk3_config_padding_is_prefix_zeros() -> None:
    # §10.2 #3: configs pad with *leading* zeros (messages pad at the end, 1:1 uses 0x80).
    body = b"d1:#i0e1:&de1:<le1:=dee"
    padded = cc.pad(body)
    assert len(padded) + cc.OVERHEAD == 256
    assert padded.endswith(body) and padded[: -len(body)] == bytes(len(padded) - len(body))
    assert cc.unpad(padded) == body
    assert cc.unpad(body + b"\x00\x00") == body + b"\x00\x00"  # trailing zeros are data


def test_compress_only_when_shorter() -> None:
    small = b"d1:a1:be"
    assert cc.compress(small) == small
    big = b"d1:a" + b"1000:" + b"x" * 1000 + b"e"
    packed = cc.compress(big)
    assert packed.startswith(b"z") and len(packed) < len(big)
    assert cc.decompress(packed) == big


def test_risk12_frame_without_content_size() -> None:
    body = b"d1:a5000:" + b"y" * 5000 + b"e"
    frame = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(body)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert cc.decompress(b"z" + frame) == body
    # Streamed frames (no content size either) work the same.
    streamed = zstandard.ZstdCompressor(level=1).compressobj()
    chunked = streamed.compress(body) + streamed.flush()
    assert cc.decompress(b"z" + chunked) == body


@pytest.mark.parametrize("content_size", [True, False])
def test_risk12_oversize_is_refused(content_size: bool) -> None:
    body = b"d1:a" + b"20000:" + b"z" * 20000 + b"e"
    frame = zstandard.ZstdCompressor(level=1, write_content_size=content_size).compress(body)
    assert cc.decompress(b"z" + frame, max_size=len(body)) == body
    with pytest.raises(cc.ConfigBodyError):
        cc.decompress(b"z" + frame, max_size=len(body) - 1)


def test_truncated_or_bad_frames_are_typed_errors() -> None:
    frame = zstandard.ZstdCompressor(level=1).compress(b"d1:a100:" + b"q" * 100 + b"e")
    for cut in range(len(frame)):
        with pytest.raises(cc.ConfigBodyError):
            cc.decompress(b"z" + frame[:cut])
    with pytest.raises(cc.ConfigBodyError):
        cc.decompress(b"z" + frame + b"junk")
    compressed_non_dict = zstandard.ZstdCompressor(level=1).compress(b"l" + b"i1e" * 50 + b"e")
    with pytest.raises(cc.ConfigBodyError):
        cc.decompress(b"z" + compressed_non_dict)


def test_open_body_refuses_multipart_and_garbage() -> None:
    with pytest.raises(cc.ConfigBodyError):
        cc.open_body(b"\x00\x00m" + b"l" + b"e")
    with pytest.raises(cc.ConfigBodyError):
        cc.open_body(b"\x00\x00xyz")


def test_decrypt_errors() -> None:
    blob = cc.encrypt(b"abc", KEY_BASE, b"dom")
    with pytest.raises(cc.ConfigCryptoError):
        cc.decrypt(blob, bytes(32), b"dom")
    with pytest.raises(cc.ConfigCryptoError):
        cc.decrypt(blob, KEY_BASE, b"other")
    with pytest.raises(cc.ConfigCryptoError):
        cc.decrypt(blob[:39], KEY_BASE, b"dom")
    with pytest.raises(cc.ConfigCryptoError):
        cc.decrypt_any(blob, [bytes(32), b"\x01" * 32], b"dom")
    assert cc.decrypt_any(blob, [bytes(32), KEY_BASE], b"dom") == b"abc"


@pytest.mark.parametrize(
    ("key", "domain"), [(b"short", b"d"), (KEY_BASE, b""), (KEY_BASE, b"x" * 25)]
)
def test_bad_key_or_domain_is_invalid_input(key: bytes, domain: bytes) -> None:
    with pytest.raises(InvalidInput):
        cc.encrypt(b"abc", key, domain)


@given(
    st.binary(max_size=3000),
    st.binary(min_size=32, max_size=32),
    st.sampled_from([b"groups::Info", b"groups::Members", b"UserProfile"]),
)
def test_encrypt_decrypt_round_trip(plain: bytes, key: bytes, domain: bytes) -> None:
    out = cc.encrypt(plain, key, domain)
    assert out == cc.encrypt(plain, key, domain)  # deterministic (§1.8)
    assert cc.decrypt(out, key, domain) == plain


@given(st.dictionaries(st.binary(max_size=5), st.binary(max_size=300), max_size=20))
def test_seal_open_round_trip(entries: dict[bytes, bytes]) -> None:
    bt = encode(entries)
    blob = cc.seal(bt, KEY_BASE, b"groups::Members")
    plain = cc.decrypt(blob, KEY_BASE, b"groups::Members")
    assert (len(plain) + cc.OVERHEAD) % 256 == 0 or len(plain) + cc.OVERHEAD >= 5120
    assert cc.open_body(plain) == bt


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_typed_errors(raw: bytes) -> None:
    calls: tuple[Callable[[], object], ...] = (
        lambda: cc.decrypt(raw, KEY_BASE, b"groups::Info"),
        lambda: cc.open_body(raw),
        lambda: cc.decompress(b"z" + raw),
        lambda: cc.decompress(raw),
    )
    for call in calls:
        with contextlib.suppress(SessionError):
            call()
