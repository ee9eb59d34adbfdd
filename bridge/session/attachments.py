"""Attachment encryption: legacy AES-CBC + HMAC (§7.2) and deterministic secretstream (§7.3).

Section numbers (§n) refer to ``docs/session-protocol.md``. Pure functions: the caller downloads
or uploads the blob; the pointer fields come from
:class:`bridge.session.messages.Attachment`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from dataclasses import dataclass, field
from urllib.parse import urldefrag

import nacl.bindings as sodium
import nacl.exceptions
from cryptography.hazmat.primitives import padding as pkcs7
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bridge.session.errors import CryptoError, DecodeError, InvalidInput

# §7.2 legacy format
LEGACY_KEY_BYTES = 64  # aes_key(32) || mac_key(32)
_IV_BYTES = 16
_MAC_BYTES = 32
_AES_BLOCK = 16
_MIN_PADDED_SIZE = 541  # desktop addAttachmentPadding
MAX_ATTACHMENT_BYTES = 10_000_000  # desktop upload limit; also the padding cap (§7.1, §7.2)

# §7.3 deterministic format
DETERMINISTIC_KEY_BYTES = 32
_DETERMINISTIC_PREFIX = b"S"
_CHUNK_BYTES = 32_768
_STREAM_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17
_STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_MIN_PADDING_GRANULE = 131_072


class InvalidAttachmentKey(InvalidInput):
    """An attachment key has the wrong length for its format."""


class AttachmentTooLarge(InvalidInput):
    """The file is over Session's 10 000 000-byte limit, which counts the plaintext (§7.1)."""


class MalformedAttachment(DecodeError):
    """The downloaded blob does not have the shape of an encrypted attachment."""


class AttachmentMacMismatch(CryptoError):
    """The legacy HMAC-SHA256 does not match: wrong key or tampered blob (§7.2)."""


class AttachmentDigestMismatch(CryptoError):
    """SHA-256 of the blob differs from the pointer's ``digest`` (§7.2)."""


class AttachmentDecryptionFailed(CryptoError):
    """Decryption failed after the checks (bad padding, failed secretstream chunk...)."""


@dataclass(frozen=True)
class EncryptedAttachment:
    """An encrypted blob ready to upload, with the pointer fields describing it (§2.6)."""

    blob: bytes = field(repr=False)
    key: bytes = field(repr=False)
    digest: bytes | None
    size: int


@dataclass(frozen=True)
class FileUrl:
    """A file-server URL split from its ``#p=...&d`` fragment (§2.6)."""

    url: str
    server_pubkey: str | None
    deterministic: bool


def parse_file_url(url: str) -> FileUrl:
    """Split ``url`` into the download URL and the fragment's flags (§2.6).

    ``p=<hex>`` names a non-default file server's Ed25519 key; ``d`` (with or without ``=``)
    marks deterministic encryption (§7.3).
    """
    base, fragment = urldefrag(url)
    params = dict(part.partition("=")[::2] for part in fragment.split("&") if part)
    return FileUrl(base, params.get("p") or None, "d" in params)


def padded_attachment_size(size: int) -> int:
    """Size after desktop's attachment padding: ``max(541, floor(1.05^ceil(log_1.05 n)))``.

    Capped at :data:`MAX_ATTACHMENT_BYTES` (§7.2).
    """
    if size <= 1:
        return _MIN_PADDED_SIZE
    padded = max(_MIN_PADDED_SIZE, math.floor(1.05 ** math.ceil(math.log(size) / math.log(1.05))))
    if padded > MAX_ATTACHMENT_BYTES >= size:
        return MAX_ATTACHMENT_BYTES
    return max(padded, size)


def legacy_blob_size(size: int) -> int:
    """Bytes uploaded for a ``size``-byte file in the legacy format: ``iv || ct || mac`` of
    the padded plaintext (§7.2)."""
    padded = padded_attachment_size(size)
    return _IV_BYTES + (padded // _AES_BLOCK + 1) * _AES_BLOCK + _MAC_BYTES


#: The blob of a file at the limit (10 000 064 bytes): what a file server must accept, as the
#: limit counts the plaintext, not the padded, encrypted upload (§7.1).
MAX_LEGACY_BLOB_BYTES = legacy_blob_size(MAX_ATTACHMENT_BYTES)


def encrypt_attachment(
    data: bytes, *, key: bytes | None = None, iv: bytes | None = None, pad: bool = True
) -> EncryptedAttachment:
    """Legacy encryption (§7.2): zero-pad, AES-256-CBC/PKCS7, HMAC-SHA256 over ``iv || ct``.

    ``key`` (64 bytes) and ``iv`` (16 bytes) are random unless given (tests). The result's
    ``digest`` is SHA-256 of the blob ``iv || ct || mac``; ``size`` the unpadded length.
    :class:`AttachmentTooLarge` for more than :data:`MAX_ATTACHMENT_BYTES` of ``data``: like
    desktop, the limit counts the plaintext, so a file just under it is sent although its
    padded, encrypted blob is slightly over 10 000 000 bytes (§7.1).
    """
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(
            f"{len(data)} bytes is over the {MAX_ATTACHMENT_BYTES}-byte attachment limit"
        )
    key = os.urandom(LEGACY_KEY_BYTES) if key is None else key
    iv = os.urandom(_IV_BYTES) if iv is None else iv
    if len(key) != LEGACY_KEY_BYTES or len(iv) != _IV_BYTES:
        raise InvalidAttachmentKey("legacy attachments use a 64-byte key and a 16-byte IV")
    plaintext = data + bytes(padded_attachment_size(len(data)) - len(data)) if pad else data
    padder = pkcs7.PKCS7(_AES_BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).encryptor()
    body = iv + encryptor.update(padded) + encryptor.finalize()
    blob = body + hmac.digest(key[32:], body, "sha256")
    return EncryptedAttachment(blob, key, hashlib.sha256(blob).digest(), len(data))


def decrypt_attachment(
    blob: bytes, key: bytes, digest: bytes | None, size: int | None = None
) -> bytes:
    """Check the MAC, then the digest, then decrypt a legacy attachment (§7.2).

    The result is truncated to ``size`` when it is longer (attachment padding). Pass
    ``digest=None`` only if the pointer has none. Raises :class:`InvalidAttachmentKey`,
    :class:`MalformedAttachment`, :class:`AttachmentMacMismatch`,
    :class:`AttachmentDigestMismatch` or :class:`AttachmentDecryptionFailed`.
    """
    if len(key) != LEGACY_KEY_BYTES:
        raise InvalidAttachmentKey("legacy attachments use a 64-byte key")
    blob = bytes(blob)
    ciphertext_len = len(blob) - _IV_BYTES - _MAC_BYTES
    if ciphertext_len < _AES_BLOCK or ciphertext_len % _AES_BLOCK:
        raise MalformedAttachment(f"blob of {len(blob)} bytes is not iv || AES blocks || mac")
    body, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
    if not hmac.compare_digest(hmac.digest(key[32:], body, "sha256"), mac):
        raise AttachmentMacMismatch("attachment MAC does not match")
    if digest is not None and not hmac.compare_digest(hashlib.sha256(blob).digest(), digest):
        raise AttachmentDigestMismatch("attachment digest does not match")
    plaintext = _aes_cbc_decrypt(key[:32], body[:_IV_BYTES], body[_IV_BYTES:])
    if size is not None and 0 <= size < len(plaintext):
        plaintext = plaintext[:size]
    return plaintext


def _aes_cbc_decrypt(aes_key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = pkcs7.PKCS7(_AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise AttachmentDecryptionFailed("bad PKCS7 padding after decryption") from None


def deterministic_padding(size: int) -> int:
    """Padding length (>= 1) of the deterministic format for ``size`` data bytes (§7.3).

    Padding plus data is a multiple of ``bit_floor(max(size, 131072)) >> 5``.
    """
    granule = (1 << (max(size, _MIN_PADDING_GRANULE).bit_length() - 1)) >> 5
    total = -(-(size + 1) // granule) * granule
    return total - size


def encrypt_attachment_deterministic(data: bytes, key: bytes) -> bytes:
    """Encrypt in the deterministic attachment format (§7.3) under a 32-byte ``key``.

    The layout (``'S' || header || chunks``, padding ``00.. 01`` before the data) is
    libsession's; the stream header here is random, so the blob decrypts everywhere but is not
    byte-identical to libsession's (which derives key and nonce from the sender seed).
    """
    if len(key) != DETERMINISTIC_KEY_BYTES:
        raise InvalidAttachmentKey("deterministic attachments use a 32-byte key")
    plaintext = bytes(deterministic_padding(len(data)) - 1) + b"\x01" + data
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    parts = [_DETERMINISTIC_PREFIX, header]
    for start in range(0, len(plaintext), _CHUNK_BYTES):
        chunk = plaintext[start : start + _CHUNK_BYTES]
        last = start + _CHUNK_BYTES >= len(plaintext)
        tag = _TAG_FINAL if last else _TAG_MESSAGE
        parts.append(sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, None, tag))
    return b"".join(parts)


def decrypt_attachment_deterministic(blob: bytes, key: bytes) -> bytes:
    """Decrypt the deterministic attachment format (§7.3) with its 32-byte ``key``.

    Raises :class:`InvalidAttachmentKey`, :class:`MalformedAttachment` or
    :class:`AttachmentDecryptionFailed` (wrong key, tampering, truncation, bad padding).
    """
    if len(key) != DETERMINISTIC_KEY_BYTES:
        raise InvalidAttachmentKey("deterministic attachments use a 32-byte key")
    blob = bytes(blob)
    body_start = 1 + _STREAM_HEADER_BYTES
    if len(blob) < body_start + _STREAM_ABYTES or blob[:1] != _DETERMINISTIC_PREFIX:
        raise MalformedAttachment("not a deterministic attachment ('S' || header || chunks)")
    plaintext = _pull_chunks(blob[1:body_start], blob[body_start:], key)
    data_start = len(plaintext) - len(plaintext.lstrip(b"\x00"))
    if data_start == len(plaintext) or plaintext[data_start] != 0x01:
        raise AttachmentDecryptionFailed("deterministic attachment padding is malformed")
    return plaintext[data_start + 1 :]


def _pull_chunks(header: bytes, body: bytes, key: bytes) -> bytes:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sealed_chunk = _CHUNK_BYTES + _STREAM_ABYTES
    parts: list[bytes] = []
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        for start in range(0, len(body), sealed_chunk):
            chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, body[start : start + sealed_chunk], None
            )
            parts.append(chunk)
            is_last = start + sealed_chunk >= len(body)
            if (tag == _TAG_FINAL) != is_last:
                raise AttachmentDecryptionFailed("secretstream FINAL tag is misplaced")
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise AttachmentDecryptionFailed("secretstream chunk does not decrypt") from None
    return b"".join(parts)


def decrypt_pointer_blob(
    blob: bytes, key: bytes, digest: bytes | None, size: int | None, url: str | None
) -> bytes:
    """Decrypt a downloaded attachment in whichever format its pointer describes (§2.6).

    Deterministic if the URL fragment has ``d`` or the key is 32 bytes and there is no
    digest (§7.3); legacy otherwise.
    """
    deterministic = url is not None and parse_file_url(url).deterministic
    if deterministic or (len(key) == DETERMINISTIC_KEY_BYTES and not digest):
        return decrypt_attachment_deterministic(blob, key)
    return decrypt_attachment(blob, key, digest, size)
