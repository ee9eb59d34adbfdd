"""Attachment and avatar encryption (docs/session-protocol.md §7.2-§7.4, §2.13)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from session_python import crypto as oracle  # type: ignore[import-untyped]

from bridge.session import attachments as att
from bridge.session import avatars
from bridge.session.errors import SessionError

KEY64 = bytes(range(64))
IV16 = bytes(range(100, 116))
KEY32 = bytes(range(32))


# --- legacy AES-CBC + HMAC (§7.2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "padded"),
    [
        (0, 541),
        (1, 541),
        (541, 541),  # 1.05^129 = 541.4
        (542, 568),  # 1.05^130 = 568.5
        (1000, 1020),
        (9_999_999, 10_000_000),  # the next 1.05^k is above the cap
        (10_000_000, 10_000_000),
    ],
)
def test_padded_attachment_size(size: int, padded: int) -> None:
    assert att.padded_attachment_size(size) == padded


@given(st.integers(min_value=0, max_value=20_000_000))
def test_padding_is_monotonic_and_capped(size: int) -> None:
    padded = att.padded_attachment_size(size)
    assert padded >= size
    assert padded >= 541
    if size <= att.MAX_ATTACHMENT_BYTES:
        assert padded <= att.MAX_ATTACHMENT_BYTES
    assert att.padded_attachment_size(size + 1) >= padded


def test_padding_matches_the_session_python_oracle() -> None:
    for size in (0, 1, 540, 541, 542, 1000, 5000, 123_456):
        assert len(oracle.add_attachment_padding(bytes(size))) == att.padded_attachment_size(size)


@pytest.mark.parametrize("size", [0, 15, 16, 541, 1000, 123_456])
def test_legacy_blob_size_is_the_uploaded_size(size: int) -> None:
    assert len(att.encrypt_attachment(bytes(size)).blob) == att.legacy_blob_size(size)


def test_the_limit_counts_the_plaintext() -> None:
    # desktop checks the file's own size (§7.1): at the limit it is padded to 10 000 000 bytes
    # and the uploaded blob is 64 bytes more; one byte over the limit is refused
    assert att.MAX_LEGACY_BLOB_BYTES == att.legacy_blob_size(10_000_000) == 10_000_064
    assert len(att.encrypt_attachment(bytes(10_000_000)).blob) == 10_000_064
    with pytest.raises(att.AttachmentTooLarge):
        att.encrypt_attachment(bytes(10_000_001))


@settings(max_examples=50)
@given(st.binary(max_size=3000), st.booleans())
def test_legacy_round_trip(data: bytes, pad: bool) -> None:
    encrypted = att.encrypt_attachment(data, pad=pad)
    assert encrypted.size == len(data)
    assert encrypted.digest == hashlib.sha256(encrypted.blob).digest()
    decrypted = att.decrypt_attachment(
        encrypted.blob, encrypted.key, encrypted.digest, encrypted.size
    )
    assert decrypted == data


def test_legacy_layout() -> None:
    encrypted = att.encrypt_attachment(b"hello", key=KEY64, iv=IV16, pad=False)
    assert encrypted.blob[:16] == IV16
    assert len(encrypted.blob) == 16 + 16 + 32  # one AES block of PKCS7-padded "hello"


def test_legacy_interop_with_session_python() -> None:
    ours = att.encrypt_attachment(b"photo bytes" * 50)
    theirs = oracle.decrypt_attachment(ours.blob, ours.key, ours.digest, ours.size)
    assert theirs == b"photo bytes" * 50
    blob, digest = oracle.encrypt_attachment_data(b"their file", KEY64, IV16)
    assert att.decrypt_attachment(blob, KEY64, digest) == b"their file"


def test_legacy_failures_are_typed() -> None:
    encrypted = att.encrypt_attachment(b"secret", key=KEY64, iv=IV16)
    tampered = encrypted.blob[:20] + bytes([encrypted.blob[20] ^ 1]) + encrypted.blob[21:]
    with pytest.raises(att.AttachmentMacMismatch):
        att.decrypt_attachment(tampered, KEY64, encrypted.digest)
    with pytest.raises(att.AttachmentMacMismatch):
        att.decrypt_attachment(encrypted.blob, bytes(64), encrypted.digest)
    with pytest.raises(att.AttachmentDigestMismatch):
        att.decrypt_attachment(encrypted.blob, KEY64, bytes(32))
    with pytest.raises(att.MalformedAttachment):
        att.decrypt_attachment(encrypted.blob[:-1], KEY64, None)
    with pytest.raises(att.InvalidAttachmentKey):
        att.decrypt_attachment(encrypted.blob, KEY64[:32], None)
    with pytest.raises(att.InvalidAttachmentKey):
        att.encrypt_attachment(b"x", key=b"short")


def test_bad_pkcs7_padding_with_a_valid_mac_is_typed() -> None:
    # Someone holding the key can build a blob with a valid MAC but broken PKCS7 padding.
    encryptor = Cipher(algorithms.AES(KEY64[:32]), modes.CBC(IV16)).encryptor()
    body = IV16 + encryptor.update(bytes(16)) + encryptor.finalize()
    blob = body + hmac.digest(KEY64[32:], body, "sha256")
    with pytest.raises(att.AttachmentDecryptionFailed):
        att.decrypt_attachment(blob, KEY64, None)


@given(st.binary(max_size=200))
def test_legacy_random_blobs_give_typed_errors(blob: bytes) -> None:
    with pytest.raises(SessionError):
        att.decrypt_attachment(blob, KEY64, None)


def test_size_truncates_only_when_shorter() -> None:
    encrypted = att.encrypt_attachment(b"abc", key=KEY64, iv=IV16)
    assert att.decrypt_attachment(encrypted.blob, KEY64, encrypted.digest, 3) == b"abc"
    untruncated = att.decrypt_attachment(encrypted.blob, KEY64, encrypted.digest, 10_000)
    assert len(untruncated) == 541 and untruncated.startswith(b"abc")


# --- deterministic secretstream format (§7.3) ------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4094, 4095, 32_767, 32_768, 65_536, 140_000])
def test_deterministic_round_trip_across_chunk_boundaries(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    blob = att.encrypt_attachment_deterministic(data, KEY32)
    assert blob[:1] == b"S"
    assert att.decrypt_attachment_deterministic(blob, KEY32) == data
    # Padding + data fills whole granules of bit_floor(max(size, 131072)) >> 5 bytes.
    granule = (1 << (max(size, 131_072).bit_length() - 1)) >> 5
    assert (size + att.deterministic_padding(size)) % granule == 0


@settings(max_examples=30)
@given(st.binary(max_size=5000))
def test_deterministic_property_round_trip(data: bytes) -> None:
    blob = att.encrypt_attachment_deterministic(data, KEY32)
    assert att.decrypt_attachment_deterministic(blob, KEY32) == data


def test_deterministic_failures_are_typed() -> None:
    data = bytes(70_000)
    blob = att.encrypt_attachment_deterministic(data, KEY32)
    with pytest.raises(att.AttachmentDecryptionFailed):
        att.decrypt_attachment_deterministic(blob, bytes(32))
    with pytest.raises(att.AttachmentDecryptionFailed):  # last chunk (FINAL) dropped
        att.decrypt_attachment_deterministic(blob[: 25 + 2 * (32_768 + 17)], KEY32)
    with pytest.raises(att.AttachmentDecryptionFailed):
        att.decrypt_attachment_deterministic(blob[:-1], KEY32)
    with pytest.raises(att.MalformedAttachment):
        att.decrypt_attachment_deterministic(b"X" + blob[1:], KEY32)
    with pytest.raises(att.InvalidAttachmentKey):
        att.decrypt_attachment_deterministic(blob, KEY64)


@given(st.binary(max_size=300))
def test_deterministic_random_blobs_give_typed_errors(blob: bytes) -> None:
    with pytest.raises(SessionError):
        att.decrypt_attachment_deterministic(b"S" + blob, KEY32)


def test_pointer_dispatch_and_url_fragment() -> None:
    assert att.parse_file_url("http://f/file/abc#p=aa11&d") == att.FileUrl(
        "http://f/file/abc", "aa11", True
    )
    assert att.parse_file_url("http://f/file/abc") == att.FileUrl("http://f/file/abc", None, False)
    deterministic = att.encrypt_attachment_deterministic(b"d", KEY32)
    assert att.decrypt_pointer_blob(deterministic, KEY32, None, 1, "http://f/file/1#d=") == b"d"
    legacy = att.encrypt_attachment(b"l")
    assert att.decrypt_pointer_blob(legacy.blob, legacy.key, legacy.digest, 1, "u") == b"l"


# --- profile pictures (§2.13, §7.4) ----------------------------------------------------


@given(st.binary(max_size=2000))
def test_avatar_round_trip(image: bytes) -> None:
    blob = avatars.encrypt_avatar(image, KEY32)
    assert len(blob) == 12 + len(image) + 16
    assert avatars.decrypt_avatar(blob, KEY32) == image


def test_avatar_interop_with_session_python() -> None:
    assert oracle.decrypt_profile(avatars.encrypt_avatar(b"png!", KEY32), KEY32) == b"png!"
    assert avatars.decrypt_avatar(oracle.encrypt_profile(b"jpeg", KEY32), KEY32) == b"jpeg"


def test_avatar_deterministic_url() -> None:
    blob = att.encrypt_attachment_deterministic(b"avatar", KEY32)
    assert avatars.decrypt_avatar_from_url(blob, KEY32, "http://f/file/9#d") == b"avatar"
    legacy = avatars.encrypt_avatar(b"avatar", KEY32)
    assert avatars.decrypt_avatar_from_url(legacy, KEY32, "http://f/file/9") == b"avatar"


def test_avatar_failures_are_typed() -> None:
    blob = avatars.encrypt_avatar(b"img", KEY32)
    with pytest.raises(avatars.AvatarDecryptionFailed):
        avatars.decrypt_avatar(blob, bytes(32))
    with pytest.raises(avatars.AvatarDecryptionFailed):
        avatars.decrypt_avatar(blob[:20], KEY32)
    with pytest.raises(avatars.InvalidProfileKey):
        avatars.decrypt_avatar(blob, KEY64)
    with pytest.raises(avatars.InvalidProfileKey):
        avatars.encrypt_avatar(b"img", b"short")


@given(st.binary(max_size=200), st.booleans())
def test_avatar_random_blobs_give_typed_errors(blob: bytes, deterministic: bool) -> None:
    with pytest.raises(SessionError):
        avatars.decrypt_avatar(blob, KEY32, deterministic=deterministic)
