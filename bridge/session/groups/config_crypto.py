"""Config body: padding, zstd compression and ``config::encrypt`` (docs/groups-v2.md §1.7, §1.8).

Layers (§1.1), writer order: bt bytes -> :func:`compress` -> :func:`pad` -> :func:`encrypt`;
readers undo them with :func:`decrypt` -> :func:`unpad` -> :func:`decompress` (or hand an ``m``
body to :mod:`bridge.session.groups.multipart`). :func:`seal` and :func:`open_body` chain them.
"""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import nacl.exceptions
import zstandard

from bridge.session.errors import CryptoError, DecodeError, InvalidInput

OVERHEAD = 40  # 16-byte AEAD tag + 24-byte nonce (§1.8)
NONCE_SIZE = 24
KEY_SIZE = 32
MAX_MESSAGE_SIZE = 76_800  # largest stored config message (§1.9)
# libsession has no cap for configs; §1.7 recommends a generous one.
MAX_DECOMPRESSED_SIZE = 5 * 1024 * 1024
ZSTD_LEVEL = 1
_NONCE_KEY_PREFIX = b"libsessionutil-config-encrypted-"  # §1.8 / §10.2 #4 (not the doc's key)

COMPRESSED_PREFIX = b"z"
MULTIPART_PREFIX = b"m"
DICT_PREFIX = b"d"


class ConfigCryptoError(CryptoError):
    """A config blob is too short or does not decrypt with the given key (§1.8)."""


class ConfigBodyError(DecodeError):
    """A decrypted config body is not a valid (padded, maybe compressed) message (§1.7)."""


def padded_size(size: int, overhead: int = OVERHEAD) -> int:
    """Return libsession's padded length for ``size`` bytes plus ``overhead`` (§1.7).

    The result plus ``overhead`` is a multiple of a chunk that grows with the size.
    """
    total = size + overhead
    if total < 5120:
        chunk = 256
    elif total < 20480:
        chunk = 1024
    elif total < 40960:
        chunk = 2048
    else:
        chunk = 5120
    return -(-total // chunk) * chunk - overhead


def pad(body: bytes) -> bytes:
    """Prefix ``body`` with zeros up to :func:`padded_size` (a *prefix* padding, §1.7)."""
    return bytes(padded_size(len(body)) - len(body)) + body


def unpad(padded: bytes) -> bytes:
    """Strip the leading zero padding (a body never starts with ``0x00``, §1.7)."""
    return bytes(padded).lstrip(b"\x00")


def compress(bt: bytes) -> bytes:
    """Return ``'z' || zstd(bt)`` when that is shorter than ``bt``, else ``bt`` (§1.7)."""
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(bt)
    if len(compressed) + 1 < len(bt):
        return COMPRESSED_PREFIX + compressed
    return bytes(bt)


def decompress(body: bytes, max_size: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """Undo :func:`compress`: a ``z`` body is decompressed, and the result must be a bt dict.

    Frames with or without a content-size field are accepted (§10.2 #12); output larger
    than ``max_size`` is refused with :class:`ConfigBodyError`.
    """
    body = bytes(body)
    if body.startswith(COMPRESSED_PREFIX):
        body = _zstd_decompress(body[1:], max_size)
    if not body.startswith(DICT_PREFIX):
        raise ConfigBodyError("config body is not a bt dict")
    return body


def _zstd_decompress(frame: bytes, max_size: int) -> bytes:
    try:
        declared = zstandard.get_frame_parameters(frame).content_size
        # A declared size is trusted by the library for its allocation, so check it first;
        # without one (CONTENTSIZE_UNKNOWN) max_output_size bounds the streamed output.
        if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > max_size:
            raise ConfigBodyError(f"compressed config declares {declared} bytes")
        out = zstandard.ZstdDecompressor().decompress(
            frame, max_output_size=max_size, allow_extra_data=False
        )
    except zstandard.ZstdError as e:
        raise ConfigBodyError(f"bad or oversized zstd frame: {e}") from e
    if len(out) > max_size:
        raise ConfigBodyError("decompressed config too large")
    return out


def _check_domain(domain: bytes) -> None:
    if not 1 <= len(domain) <= 24 or not domain.isascii():
        raise InvalidInput("config domain must be 1-24 ASCII bytes")


def _key(key_base: bytes, size: int, domain: bytes) -> bytes:
    if len(key_base) != KEY_SIZE:
        raise InvalidInput("config key_base must be 32 bytes")
    # §1.8: unkeyed BLAKE2b over key_base || uint64_be(len of the *padded* plaintext) || domain.
    material = key_base + size.to_bytes(8, "big") + domain
    return hashlib.blake2b(material, digest_size=KEY_SIZE).digest()


def encrypt(plaintext: bytes, key_base: bytes, domain: bytes) -> bytes:
    """``config::encrypt`` (§1.8): ``AEAD(plaintext) || nonce``, deterministic.

    ``plaintext`` is normally the padded body; the key depends on its length (§10.2 #4).
    """
    _check_domain(domain)
    key = _key(key_base, len(plaintext), domain)
    nonce = hashlib.blake2b(
        plaintext, key=_NONCE_KEY_PREFIX + domain, digest_size=NONCE_SIZE
    ).digest()
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, None, nonce, key)
    return bytes(sealed) + nonce


def decrypt(ciphertext: bytes, key_base: bytes, domain: bytes) -> bytes:
    """``config::decrypt`` (§1.8); :class:`ConfigCryptoError` on a wrong key or short input."""
    _check_domain(domain)
    ciphertext = bytes(ciphertext)
    if len(ciphertext) < OVERHEAD:
        raise ConfigCryptoError("config blob shorter than its 40-byte overhead")
    nonce = ciphertext[-NONCE_SIZE:]
    key = _key(key_base, len(ciphertext) - OVERHEAD, domain)
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext[:-NONCE_SIZE], None, nonce, key
        )
    except nacl.exceptions.CryptoError as e:
        raise ConfigCryptoError("config blob does not decrypt with this key") from e
    return bytes(plain)


def decrypt_any(ciphertext: bytes, key_bases: list[bytes], domain: bytes) -> bytes:
    """Try every key in order (pending, newest → oldest, §1.8) and return the first plaintext."""
    for key_base in key_bases:
        try:
            return decrypt(ciphertext, key_base, domain)
        except ConfigCryptoError:
            continue
    raise ConfigCryptoError("config blob does not decrypt with any known key")


def seal(bt: bytes, key_base: bytes, domain: bytes, *, use_zstd: bool = True) -> bytes:
    """Writer pipeline for one (non-multipart) message: compress, pad, encrypt (§1.7, §1.8)."""
    body = compress(bt) if use_zstd else bytes(bt)
    return encrypt(pad(body), key_base, domain)


def open_body(plaintext: bytes, max_size: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """Reader pipeline after :func:`decrypt` for a single message: unpad, decompress, check ``d``.

    An ``m`` (multipart) body raises :class:`ConfigBodyError`; use
    :func:`bridge.session.groups.multipart.classify` to handle those.
    """
    body = unpad(plaintext)
    if body.startswith(MULTIPART_PREFIX):
        raise ConfigBodyError("multipart config part, not a whole message")
    return decompress(body, max_size)
