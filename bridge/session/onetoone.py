"""One-to-one ("session protocol") encryption and the 1:1 message codec (docs/session-protocol.md
§3).

Sending (§3.1): ``sig = Ed25519(sk, M || A_s || Y)``, ``ct = crypto_box_seal(M || A_s || sig, Y)``
where ``M`` is the padded ``Content``, ``A_s`` the sender's Ed25519 key and ``Y`` the recipient's
X25519 key (the Session ID without ``05``). Receiving (§3.2) opens the box with our X25519 keys
and verifies the signature over ``M || A_s || our X25519 key``: success proves that the holder
of ``A_s`` wrote the message *for us*. The sender's Session ID is ``05 || X25519(A_s)``.

Everything here is pure; failures are typed :class:`~bridge.session.errors.SessionError`\\ s.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

import nacl.bindings as sodium
import nacl.exceptions

from bridge.session.envelope import decode_stored_message, encode_stored_message
from bridge.session.errors import CryptoError, DecodeError, InvalidInput, ProtocolError
from bridge.session.messages import Message, content_to_proto, parse_content
from bridge.session.padding import pad_message, unpad_message

# A stored message can never be larger than what a storage server accepts: the ``store`` body
# is limited to 76 800 bytes (§6.12), and the base64 ``data`` is part of it. Anything larger
# did not come from a swarm; refusing it early bounds the work an attacker can cause.
MAX_STORED_MESSAGE_CHARS = 76_800

_SIGNATURE_BYTES = 64
_ED25519_PUBKEY_BYTES = 32
_TRAILER_BYTES = _ED25519_PUBKEY_BYTES + _SIGNATURE_BYTES  # A_s || sig after M (§3.1)
_SESSION_ID_PREFIX = "05"
_UINT64_MAX = 2**64 - 1
# BLAKE2b key of libsession's deterministic ephemeral key (§3.1, docs/groups-v2.md §1.11).
_DETERMINISTIC_EPHEMERAL_KEY = b"SessionBoxEphemeralHashKey"


class InvalidKey(InvalidInput):
    """A key or Session ID given to this module has the wrong form."""


class DecryptionFailed(CryptoError):
    """The sealed box does not open with our keys (not for us, or corrupted)."""


class BadSignature(CryptoError):
    """The sender's signature does not verify, or the sender key is not a valid point."""


class TimestampMismatch(ProtocolError):
    """``Content.sigTimestamp`` differs from the envelope timestamp (§2.11)."""


class MessageTooLarge(DecodeError):
    """A received message is larger than any storage server would have stored (§6.12)."""


class OutgoingMessageTooLarge(InvalidInput):
    """An outgoing message would exceed the storage server's size limit (§6.12)."""


@dataclass(frozen=True, eq=False)
class MessageKeys:
    """The key material of one Session account needed for 1:1 messages.

    Build it once per account with :meth:`from_ed25519_secret_key` or :meth:`from_seed`; the
    conversions (§1.1) are then not repeated for every message. Secrets never appear in
    ``repr``.
    """

    ed25519_public_key: bytes
    x25519_public_key: bytes
    ed25519_secret_key: bytes = field(repr=False)
    x25519_private_key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"MessageKeys(session_id={self.session_id!r})"

    @classmethod
    def from_ed25519_secret_key(cls, secret_key: bytes) -> MessageKeys:
        """From libsodium's 64-byte Ed25519 secret key ``seed || A`` (§1.1)."""
        if len(secret_key) != sodium.crypto_sign_SECRETKEYBYTES:
            raise InvalidKey("an Ed25519 secret key is 64 bytes (seed || public key)")
        return cls.from_seed(bytes(secret_key[:32]))

    @classmethod
    def from_seed(cls, seed: bytes) -> MessageKeys:
        """From the 32-byte Ed25519 seed, the account secret (§1.1)."""
        if len(seed) != sodium.crypto_sign_SEEDBYTES:
            raise InvalidKey("an Ed25519 seed is 32 bytes")
        public_key, secret_key = sodium.crypto_sign_seed_keypair(bytes(seed))
        return cls(
            ed25519_public_key=public_key,
            x25519_public_key=sodium.crypto_sign_ed25519_pk_to_curve25519(public_key),
            ed25519_secret_key=secret_key,
            x25519_private_key=sodium.crypto_sign_ed25519_sk_to_curve25519(secret_key),
        )

    @property
    def session_id(self) -> str:
        """``05`` + hex of the X25519 public key (§1.3)."""
        return _SESSION_ID_PREFIX + self.x25519_public_key.hex()


class DecryptedMessage(NamedTuple):
    """Result of :func:`decrypt_incoming`."""

    sender_session_id: str
    sender_ed25519_public_key: bytes
    plaintext: bytes


class DirectMessage(NamedTuple):
    """Result of :func:`decode_direct_message`."""

    sender_session_id: str
    timestamp: int
    content: Message


def encrypt_for_recipient(
    sender: MessageKeys | bytes, recipient_x25519_public_key: bytes, plaintext: bytes
) -> bytes:
    """Sign and seal ``plaintext`` (already padded) for the recipient, exactly as §3.1."""
    keys = _as_keys(sender)
    recipient = _check_x25519(recipient_x25519_public_key)
    inner = _signed_inner(keys, recipient, plaintext)
    return sodium.crypto_box_seal(inner, recipient)


def encrypt_for_recipient_deterministic(
    sender: MessageKeys | bytes, recipient_x25519_public_key: bytes, plaintext: bytes
) -> bytes:
    """libsession's deterministic variant of :func:`encrypt_for_recipient` (§3.1).

    The ephemeral key pair is ``crypto_box_seed_keypair(H_32(seed || Y || M,
    key="SessionBoxEphemeralHashKey"))`` and the nonce ``H_24(eph_pk || Y)``, as in any sealed
    box; the output opens with ``crypto_box_seal_open``. Used by the user-config wrapper
    (docs/groups-v2.md §1.11) and to reproduce libsession's known answer (vector ``one_to_one``).
    """
    keys = _as_keys(sender)
    recipient = _check_x25519(recipient_x25519_public_key)
    seed = keys.ed25519_secret_key[:32]
    ephemeral_seed = hashlib.blake2b(
        seed + recipient + plaintext, digest_size=32, key=_DETERMINISTIC_EPHEMERAL_KEY
    ).digest()
    ephemeral_public, ephemeral_secret = sodium.crypto_box_seed_keypair(ephemeral_seed)
    nonce = hashlib.blake2b(ephemeral_public + recipient, digest_size=24).digest()
    inner = _signed_inner(keys, recipient, plaintext)
    return ephemeral_public + sodium.crypto_box(inner, nonce, recipient, ephemeral_secret)


def decrypt_incoming(recipient: MessageKeys | bytes, ciphertext: bytes) -> DecryptedMessage:
    """Open a sealed 1:1 message and authenticate its sender (§3.2).

    Returns the sender's Session ID and Ed25519 key and the (still padded) plaintext. Raises
    :class:`DecryptionFailed` or :class:`BadSignature`; nothing else.
    """
    keys = _as_keys(recipient)
    try:
        inner = sodium.crypto_box_seal_open(
            bytes(ciphertext), keys.x25519_public_key, keys.x25519_private_key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionFailed("sealed box does not open with our key") from None
    if len(inner) <= _TRAILER_BYTES:
        raise DecryptionFailed("decrypted message is too short to hold a sender and signature")
    plaintext = inner[:-_TRAILER_BYTES]
    sender_key = inner[-_TRAILER_BYTES:-_SIGNATURE_BYTES]
    signature = inner[-_SIGNATURE_BYTES:]
    sender_x25519 = _verify_sender(
        signature, plaintext + sender_key + keys.x25519_public_key, sender_key
    )
    return DecryptedMessage(_SESSION_ID_PREFIX + sender_x25519.hex(), sender_key, plaintext)


def encode_direct_message(
    sender: MessageKeys | bytes, recipient_session_id: str, message: Message, timestamp: int
) -> str:
    """Build the base64 ``data`` to ``store`` in the recipient's swarm, namespace 0 (§3.1).

    ``timestamp`` (ms) is the sent timestamp: it becomes the envelope timestamp and the
    Content's ``sigTimestamp`` (§2.11), and is what replies, reactions and unsends refer to.
    ``sender`` is a :class:`MessageKeys` or a 64-byte Ed25519 secret key. Raises
    :class:`InvalidInput` subclasses for bad keys, ids, timestamps or messages.
    """
    if not 0 < timestamp <= _UINT64_MAX:
        raise InvalidInput(f"timestamp out of range: {timestamp}")
    keys = _as_keys(sender)
    recipient = session_id_to_x25519(recipient_session_id)
    content = content_to_proto(dataclasses.replace(message, sig_timestamp=timestamp))
    ciphertext = encrypt_for_recipient(keys, recipient, pad_message(content))
    data = encode_stored_message(ciphertext, timestamp)
    if len(data) > MAX_STORED_MESSAGE_CHARS:
        raise OutgoingMessageTooLarge(f"message is {len(data)} bytes once encoded")
    return data


def decode_direct_message(recipient: MessageKeys | bytes, data: str | bytes) -> DirectMessage:
    """Decode a message retrieved from our own swarm, namespace 0 (§3.2).

    Returns the authenticated sender's Session ID, the envelope (sent) timestamp and the
    message. Raises only :class:`~bridge.session.errors.SessionError` subclasses:
    :class:`MessageTooLarge`, ``InvalidBase64``/``MalformedEnvelope``/
    ``MissingEnvelopeContent`` (:mod:`bridge.session.envelope`), :class:`DecryptionFailed`,
    :class:`BadSignature`, ``MalformedContent``/``MissingField`` (:mod:`.messages`) and
    :class:`TimestampMismatch`.
    """
    keys = _as_keys(recipient)
    if len(data) > MAX_STORED_MESSAGE_CHARS:
        raise MessageTooLarge(f"stored message of {len(data)} bytes exceeds the store limit")
    envelope = decode_stored_message(data)
    decrypted = decrypt_incoming(keys, envelope.content)
    message = parse_content(unpad_message(decrypted.plaintext))
    # §2.11: if the Content carries a signed timestamp it must equal the envelope's.
    if message.sig_timestamp is not None and message.sig_timestamp != envelope.timestamp:
        raise TimestampMismatch(
            f"sigTimestamp {message.sig_timestamp} != envelope timestamp {envelope.timestamp}"
        )
    return DirectMessage(decrypted.sender_session_id, envelope.timestamp, message)


def session_id_to_x25519(session_id: str) -> bytes:
    """The X25519 public key of a ``05`` Session ID (§1.3), raising :class:`InvalidKey`."""
    if len(session_id) != 66 or not session_id.startswith(_SESSION_ID_PREFIX):
        raise InvalidKey("a Session ID is 05 followed by 64 hex digits")
    try:
        return bytes.fromhex(session_id[2:])
    except ValueError:
        raise InvalidKey("a Session ID is 05 followed by 64 hex digits") from None


def _as_keys(keys: MessageKeys | bytes) -> MessageKeys:
    if isinstance(keys, MessageKeys):
        return keys
    return MessageKeys.from_ed25519_secret_key(keys)


def _check_x25519(public_key: bytes) -> bytes:
    if len(public_key) != sodium.crypto_box_PUBLICKEYBYTES:
        raise InvalidKey("an X25519 public key is 32 bytes")
    return bytes(public_key)


def _signed_inner(keys: MessageKeys, recipient: bytes, plaintext: bytes) -> bytes:
    # The recipient key is signed but not transmitted (§3.1 step 1-2). PyNaCl only exposes
    # combined-mode signing; its first 64 bytes are the detached signature.
    signed = sodium.crypto_sign(
        plaintext + keys.ed25519_public_key + recipient, keys.ed25519_secret_key
    )
    return plaintext + keys.ed25519_public_key + signed[:_SIGNATURE_BYTES]


def _verify_sender(signature: bytes, signed_data: bytes, sender_key: bytes) -> bytes:
    """Verify the detached signature and return the sender's X25519 key."""
    try:
        sodium.crypto_sign_open(signature + signed_data, sender_key)
        return sodium.crypto_sign_ed25519_pk_to_curve25519(sender_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BadSignature("sender signature does not verify") from None
