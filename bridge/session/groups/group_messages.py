"""Group messages of namespace 11: encrypt and decrypt (docs/groups-v2.md §4.1, §4.2).

Layers, outermost first::

    nonce(24) || XChaCha20-Poly1305(key = a group encryption key)
      └ bt dict {"": 1, "a": sender Ed25519 pk, "d"|"z": data, "s": signature} || 0x00 * n
        └ data = Envelope{type 7, timestamp, content = Content} (zstd-compressed under "z")

The sender signs ``data || group_ed25519_pk`` (v1.2.0+, risk #1): the group key is appended
for signing but never transmitted. Padding is *suffix* zeros (risk #3).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import zstandard

from bridge.ids import SessionID
from bridge.session.envelope import CLOSED_GROUP_MESSAGE, decode_envelope, encode_envelope
from bridge.session.errors import CryptoError, DecodeError, InvalidInput
from bridge.session.groups import bencode
from bridge.session.groups.multi_encrypt import (
    AEAD_OVERHEAD,
    NONCE_SIZE,
    aead_decrypt,
    aead_encrypt,
    ed25519_pk_to_x25519,
)
from bridge.session.keys import BadSignatureError, Identity, verify_ed25519
from bridge.session.messages import ContentDecodeError, Message, content_to_proto, parse_content
from bridge.session.padding import unpad_message

__all__ = [
    "MAX_PLAINTEXT",
    "BadSenderSignature",
    "DecryptedGroupData",
    "GroupMessage",
    "GroupMessageError",
    "MalformedGroupMessage",
    "NoMatchingKey",
    "TimestampMismatch",
    "decrypt_group_data",
    "decrypt_group_message",
    "encrypt_group_data",
    "encrypt_group_message",
    "padded_length",
]

#: Largest plaintext ``encrypt_message`` accepts, and the cap on decompressed data (§4.1, §4.2).
MAX_PLAINTEXT = 1_000_000
_BLOCK = 256


class GroupMessageError(DecodeError):
    """Base class of the errors decoding a group message."""


class MalformedGroupMessage(GroupMessageError):
    """The decrypted bytes are not a valid signed group message dict (or its contents)."""


class TimestampMismatch(MalformedGroupMessage):
    """``Content.sigTimestamp`` differs from the envelope timestamp (session-protocol §2.11)."""


class NoMatchingKey(CryptoError):
    """No known group key decrypts the message (it may need a key we do not have yet)."""


class BadSenderSignature(CryptoError):
    """The sender's signature over ``data || group_pk`` does not verify (risk #1)."""


@dataclass(frozen=True, slots=True)
class DecryptedGroupData:
    """The authenticated inner data of a group message, before Envelope parsing."""

    sender: SessionID
    sender_ed25519: bytes
    data: bytes = field(repr=False)
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A decrypted, verified, parsed group message."""

    sender: SessionID
    timestamp: int
    content: Message
    key: bytes = field(repr=False)


def padded_length(length: int) -> int:
    """Padded plaintext length: ``24 + len + 16`` rounded up to a multiple of 256 (§4.1 5)."""
    overhead = NONCE_SIZE + AEAD_OVERHEAD
    return -(-(length + overhead) // _BLOCK) * _BLOCK - overhead


def encrypt_group_data(
    sender: Identity,
    group_ed25519_pk: bytes,
    key: bytes,
    data: bytes,
    *,
    compress: bool = True,
    nonce: bytes | None = None,
) -> bytes:
    """Sign, pad and encrypt ``data`` (normally an Envelope) for ns 11 (§4.1 steps 2-6).

    ``data`` is zstd-compressed (level 1) when that makes it shorter and ``compress`` is true.
    ``nonce`` is random unless given (tests only).
    """
    if not data or len(data) > MAX_PLAINTEXT:
        raise InvalidInput("group message data must be 1 to 1 000 000 bytes")
    if len(group_ed25519_pk) != 32 or len(key) != 32:
        raise InvalidInput("group public key and group key are 32 bytes")
    tag, body = b"d", data
    if compress:
        compressed = zstandard.ZstdCompressor(level=1).compress(data)
        if len(compressed) < len(data):
            tag, body = b"z", compressed
    signature = sender.sign(body + group_ed25519_pk)
    plain = bencode.encode({b"": 1, b"a": sender.ed25519_public, tag: body, b"s": signature})
    padded = plain + bytes(padded_length(len(plain)) - len(plain))
    nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
    if len(nonce) != NONCE_SIZE:
        raise InvalidInput("the nonce is 24 bytes")
    return nonce + aead_encrypt(padded, nonce, key)


def _open(ciphertext: bytes, keys: Iterable[bytes]) -> tuple[bytes, bytes]:
    if len(ciphertext) < NONCE_SIZE + AEAD_OVERHEAD:
        raise NoMatchingKey("group message is too short")
    nonce, box = ciphertext[:NONCE_SIZE], ciphertext[NONCE_SIZE:]
    for key in keys:
        plain = aead_decrypt(box, nonce, key)
        if plain is not None:
            return plain, key
    raise NoMatchingKey("no known group key decrypts this message")


def _decompress(body: bytes) -> bytes:
    # Streaming decompression: frames need not carry a content size (risk #12); cap the output.
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body)
        out = reader.read(MAX_PLAINTEXT + 1)
        while len(out) <= MAX_PLAINTEXT:
            more = reader.read(MAX_PLAINTEXT + 1 - len(out))
            if not more:
                break
            out += more
    except zstandard.ZstdError as exc:
        raise MalformedGroupMessage(f"bad zstd data: {exc}") from exc
    if len(out) > MAX_PLAINTEXT:
        raise MalformedGroupMessage("decompressed group message is too large")
    return out


def _parse_signed(plain: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """Return ``(sender_pk, body, signature, compressed)`` of the inner bt dict (§4.2)."""
    try:
        d = bencode.decode_dict(plain.rstrip(b"\x00"))
        if bencode.get_int(d, b"") != 1:
            raise MalformedGroupMessage("unknown group message version")
        sender_pk = bencode.get_bytes(d, b"a", 32)
        signature = bencode.get_bytes(d, b"s", 64)
        if (b"d" in d) == (b"z" in d):
            raise MalformedGroupMessage("need exactly one of 'd' and 'z'")
        compressed = b"z" in d
        body = bencode.get_bytes(d, b"z" if compressed else b"d")
    except bencode.BencodeError as exc:
        raise MalformedGroupMessage(f"not a group message dict: {exc}") from exc
    if not body:
        raise MalformedGroupMessage("group message data is empty")
    return sender_pk, body, signature, compressed


def decrypt_group_data(
    ciphertext: bytes, keys: Iterable[bytes], group_ed25519_pk: bytes
) -> DecryptedGroupData:
    """Decrypt with each key in order (pass pending first, then newest → oldest, §3.6),
    strip trailing zeros, check the dict, verify the sender and decompress (§4.2).

    Raises :class:`NoMatchingKey`, :class:`MalformedGroupMessage` or
    :class:`BadSenderSignature`.
    """
    plain, key = _open(bytes(ciphertext), keys)
    sender_pk, body, signature, compressed = _parse_signed(plain)
    try:
        sender_x = ed25519_pk_to_x25519(sender_pk)
        # Risk #1: the signature covers the transmitted data followed by the group pubkey.
        verify_ed25519(sender_pk, body + group_ed25519_pk, signature)
    except BadSignatureError as exc:
        raise BadSenderSignature("sender signature does not verify") from exc
    except CryptoError as exc:
        raise MalformedGroupMessage("sender key has no X25519 form") from exc
    data = _decompress(body) if compressed else body
    return DecryptedGroupData(SessionID.from_key(sender_x), sender_pk, data, key)


def _parse_content_lenient(data: bytes) -> Message:
    # The newest encoder does not pad group Content; older ones may have (§4.2): retry unpadded.
    try:
        return parse_content(data)
    except ContentDecodeError:
        unpadded = unpad_message(data)
        if unpadded == data:
            raise
        return parse_content(unpadded)


def decrypt_group_message(
    ciphertext: bytes, keys: Iterable[bytes], group_ed25519_pk: bytes
) -> GroupMessage:
    """Decrypt, verify and parse a ns 11 message: sender Session ID, timestamp, content.

    Errors: those of :func:`decrypt_group_data`, plus ``EnvelopeError`` (from
    :mod:`bridge.session.envelope`) and ``ContentDecodeError`` subclasses for a bad Envelope
    or Content, and :class:`TimestampMismatch` (all ``SessionError``). Membership of the
    sender is *not* checked (§4.2).
    """
    inner = decrypt_group_data(ciphertext, keys, group_ed25519_pk)
    # The envelope type is not checked: newest libsession infers it from the namespace
    # (docs/session-protocol.md §2.2), so a group message of another type is still read.
    envelope = decode_envelope(inner.data)
    content = _parse_content_lenient(envelope.content)
    # docs/session-protocol.md §2.11: a signed Content timestamp must equal the envelope's.
    if content.sig_timestamp is not None and content.sig_timestamp != envelope.timestamp:
        raise TimestampMismatch(
            f"sigTimestamp {content.sig_timestamp} != envelope timestamp {envelope.timestamp}"
        )
    return GroupMessage(inner.sender, envelope.timestamp, content, inner.key)


def encrypt_group_message(
    sender: Identity,
    group_ed25519_pk: bytes,
    key: bytes,
    message: Message,
    timestamp: int,
    *,
    nonce: bytes | None = None,
) -> bytes:
    """Encode ``message`` as Content in a type-7 Envelope and encrypt it for ns 11 (§4.1).

    ``key`` is the current encryption key (pending key if any, else the newest). The Content
    is not 160-byte padded. ``timestamp`` (ms) becomes the envelope timestamp and the
    Content's ``sigTimestamp``; admin signatures refer to it (§7.11).
    """
    # docs/session-protocol.md §2.11: Content.sigTimestamp = envelope timestamp = sent timestamp.
    content = content_to_proto(dataclasses.replace(message, sig_timestamp=timestamp))
    envelope = encode_envelope(content, timestamp, CLOSED_GROUP_MESSAGE)
    return encrypt_group_data(sender, group_ed25519_pk, key, envelope, nonce=nonce)
