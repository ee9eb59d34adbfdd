"""Multi-recipient encryption and the "kicked" note (docs/groups-v2.md §4.4).

One message (or one message per recipient) is encrypted to several X25519 keys with one shared
24-byte nonce. Entry ``i`` is ``AEAD_enc(msg_i, nonce, key_i)`` with
``key_i = H_32(X25519(sender_priv, R_i) || sender_pub || R_i, key=domain)``; a recipient
computes the same key from its own private key and the sender's public key, and tries it on
every entry (the entries are unlabelled, so junk entries simply fail).

The "simple" encoding is ``bt({"#": nonce, "e": [entries…]})``. Groups use it for the kicked
note of namespace -11 (:func:`make_kicked_note`, :func:`read_kicked_note`); the keys message
of §3 uses the same key derivation with its own layout (:mod:`.keys`).

Also here, because every groups module needs them: the XChaCha20-Poly1305 helpers and the
Ed25519 → X25519 conversions with typed errors.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions

from bridge.ids import SessionID
from bridge.session.errors import CryptoError, DecodeError, InvalidInput
from bridge.session.groups import bencode
from bridge.session.keys import Identity

__all__ = [
    "AEAD_OVERHEAD",
    "KICKED_DOMAIN",
    "NONCE_SIZE",
    "KickedNote",
    "MalformedMultiEncrypted",
    "MultiEncryptError",
    "NotARecipient",
    "aead_decrypt",
    "aead_encrypt",
    "blake2b",
    "decode_simple",
    "ed25519_pk_to_x25519",
    "ed25519_sk_to_x25519",
    "encode_simple",
    "make_kicked_note",
    "multi_decrypt",
    "multi_decrypt_simple",
    "multi_encrypt",
    "multi_encrypt_key",
    "multi_encrypt_simple",
    "read_kicked_note",
]

NONCE_SIZE = 24
KEY_SIZE = 32
AEAD_OVERHEAD = 16
KICKED_DOMAIN = b"SessionGroupKickedMessage"
_MAX_DOMAIN = 64  # libsession truncates the BLAKE2b key to its maximum size (§4.4)


class MultiEncryptError(CryptoError):
    """Base class of the errors of this module."""


class NotARecipient(MultiEncryptError):
    """No entry decrypts with our key: the message is not for us (or uses another domain)."""


class MalformedMultiEncrypted(DecodeError):
    """The bytes are not a multi-encrypted message (or not a kicked note) of the right shape."""


# ------------------------------------------------------------------------------ primitives


def blake2b(data: bytes, size: int, key: bytes = b"") -> bytes:
    """BLAKE2b with an ``size``-byte digest; domain strings go in as the *key* (§0, risk #18)."""
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def aead_encrypt(plaintext: bytes, nonce: bytes, key: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF) with empty associated data: ``ciphertext || tag``."""
    if len(nonce) != NONCE_SIZE or len(key) != KEY_SIZE:
        raise InvalidInput("AEAD needs a 24-byte nonce and a 32-byte key")
    return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, None, nonce, key))


def aead_decrypt(ciphertext: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """Open an XChaCha20-Poly1305 box; ``None`` when it does not authenticate with ``key``.

    Trying several keys is the normal case here, so failure is a value, not an exception.
    """
    if len(ciphertext) < AEAD_OVERHEAD or len(nonce) != NONCE_SIZE or len(key) != KEY_SIZE:
        return None
    try:
        return bytes(
            sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, None, nonce, key)
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def ed25519_pk_to_x25519(ed25519_pk: bytes) -> bytes:
    """``crypto_sign_ed25519_pk_to_curve25519``, raising :class:`CryptoError` on a bad key."""
    if not isinstance(ed25519_pk, bytes) or len(ed25519_pk) != KEY_SIZE:
        raise CryptoError("an Ed25519 public key is 32 bytes")
    try:
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(ed25519_pk))
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError) as exc:
        raise CryptoError("Ed25519 public key has no X25519 form") from exc


def ed25519_sk_to_x25519(ed25519_sk: bytes) -> bytes:
    """The clamped X25519 scalar of a 64-byte libsodium Ed25519 secret key (``x25519sk``)."""
    if not isinstance(ed25519_sk, bytes) or len(ed25519_sk) != 64:
        raise InvalidInput("an Ed25519 secret key is 64 bytes (seed || public key)")
    return bytes(sodium.crypto_sign_ed25519_sk_to_curve25519(ed25519_sk))


def _x25519(scalar: bytes, point: bytes) -> bytes:
    try:
        return bytes(sodium.crypto_scalarmult(scalar, point))
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError) as exc:
        # libsodium refuses low-order points (all-zero shared secret).
        raise CryptoError("X25519 multiplication failed (low-order key)") from exc


def multi_encrypt_key(
    own_x25519_sk: bytes,
    other_x25519_pk: bytes,
    sender_x25519_pk: bytes,
    recipient_x25519_pk: bytes,
    domain: bytes,
) -> bytes:
    """``H_32(X25519(own_sk, other_pk) || A_sender || B_recipient, key=domain)`` (§4.4).

    The sender passes (its key, the recipient's key, …) and the recipient (its key, the
    sender's key, …): the shared secret is the same, and the two public keys always go in
    sender-first order (§3.2: the group's key first for member keys).
    """
    if not all(len(k) == KEY_SIZE for k in (own_x25519_sk, other_x25519_pk, sender_x25519_pk)):
        raise InvalidInput("X25519 keys are 32 bytes")
    if len(recipient_x25519_pk) != KEY_SIZE:
        raise InvalidInput("X25519 keys are 32 bytes")
    shared = _x25519(own_x25519_sk, other_x25519_pk)
    return blake2b(shared + sender_x25519_pk + recipient_x25519_pk, 32, key=domain[:_MAX_DOMAIN])


# ------------------------------------------------------------------------------ encrypt/decrypt


def multi_encrypt(
    messages: Sequence[bytes],
    recipients: Sequence[bytes],
    sender_x25519_sk: bytes,
    sender_x25519_pk: bytes,
    domain: bytes,
    nonce: bytes,
) -> list[bytes]:
    """Encrypt to each X25519 key in ``recipients``; one entry per recipient, in order.

    ``messages`` holds either one message for everybody or one message per recipient.
    Raises :class:`CryptoError` when a recipient key is unusable (low order).
    """
    if len(messages) not in (1, len(recipients)):
        raise InvalidInput("give one message, or one message per recipient")
    entries = []
    for i, recipient in enumerate(recipients):
        key = multi_encrypt_key(sender_x25519_sk, recipient, sender_x25519_pk, recipient, domain)
        entries.append(aead_encrypt(messages[0 if len(messages) == 1 else i], nonce, key))
    return entries


def multi_decrypt(
    entries: Sequence[bytes],
    nonce: bytes,
    recipient_x25519_sk: bytes,
    recipient_x25519_pk: bytes,
    sender_x25519_pk: bytes,
    domain: bytes,
) -> bytes:
    """Return the first entry that opens with our key; raise :class:`NotARecipient` if none."""
    try:
        key = multi_encrypt_key(
            recipient_x25519_sk, sender_x25519_pk, sender_x25519_pk, recipient_x25519_pk, domain
        )
    except (CryptoError, InvalidInput) as exc:
        raise NotARecipient("sender key is not usable") from exc
    for entry in entries:
        plaintext = aead_decrypt(entry, nonce, key)
        if plaintext is not None:
            return plaintext
    raise NotARecipient("no entry decrypts with our key")


def encode_simple(nonce: bytes, entries: Sequence[bytes]) -> bytes:
    """The "simple" encoding ``bt({"#": nonce, "e": [entries…]})`` (§4.4)."""
    if len(nonce) != NONCE_SIZE:
        raise InvalidInput("the nonce is 24 bytes")
    return bencode.encode({b"#": nonce, b"e": list(entries)})


def decode_simple(data: bytes) -> tuple[bytes, list[bytes]]:
    """Parse the simple encoding into ``(nonce, entries)``.

    Raises :class:`MalformedMultiEncrypted`.
    """
    try:
        d = bencode.decode_dict(data)
        nonce = bencode.get_bytes(d, b"#", NONCE_SIZE)
        entries = bencode.get_list(d, b"e")
    except bencode.BencodeError as exc:
        raise MalformedMultiEncrypted(f"not a multi-encrypted message: {exc}") from exc
    if not all(isinstance(e, bytes) for e in entries):
        raise MalformedMultiEncrypted("entries must be byte strings")
    return nonce, [e for e in entries if isinstance(e, bytes)]


def multi_encrypt_simple(
    messages: Sequence[bytes],
    recipients: Sequence[bytes],
    sender_x25519_sk: bytes,
    sender_x25519_pk: bytes,
    domain: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """:func:`multi_encrypt` in the simple encoding; a random nonce unless one is given."""
    nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
    entries = multi_encrypt(
        messages, recipients, sender_x25519_sk, sender_x25519_pk, domain, nonce
    )
    return encode_simple(nonce, entries)


def multi_decrypt_simple(
    data: bytes,
    recipient_x25519_sk: bytes,
    recipient_x25519_pk: bytes,
    sender_x25519_pk: bytes,
    domain: bytes,
) -> bytes:
    """Decode the simple encoding and decrypt our entry (see :func:`multi_decrypt`)."""
    nonce, entries = decode_simple(data)
    return multi_decrypt(
        entries, nonce, recipient_x25519_sk, recipient_x25519_pk, sender_x25519_pk, domain
    )


# ------------------------------------------------------------------------------ kicked note


@dataclass(frozen=True, slots=True)
class KickedNote:
    """A decrypted "you were removed" note: the keys generation current before the removal."""

    generation: int


def make_kicked_note(
    group_seed: bytes,
    removed: Sequence[SessionID],
    generation: int,
    nonce: bytes | None = None,
) -> bytes:
    """Admin side: the ns -11 note for removed members (§4.4, §7.5).

    Each member gets ``x25519_pubkey(32) || ascii_decimal(generation)``; the sender is the group
    key converted to X25519, the domain ``SessionGroupKickedMessage``.
    """
    if len(group_seed) != 32 or generation < 0 or not removed:
        raise InvalidInput("need a 32-byte group seed, a generation >= 0 and removed members")
    group_pk, group_sk = sodium.crypto_sign_seed_keypair(group_seed)
    sender_sk = ed25519_sk_to_x25519(bytes(group_sk))
    sender_pk = ed25519_pk_to_x25519(bytes(group_pk))
    recipients = [sid.key for sid in removed]
    messages = [key + str(generation).encode() for key in recipients]
    return multi_encrypt_simple(messages, recipients, sender_sk, sender_pk, KICKED_DOMAIN, nonce)


def read_kicked_note(data: bytes, identity: Identity, group_ed25519_pk: bytes) -> KickedNote:
    """Member side: decrypt a ns -11 note and check it names us (§4.4).

    Raises :class:`NotARecipient` when it is not for us and :class:`MalformedMultiEncrypted`
    when its payload is not ``our pubkey || decimal generation``. Whether the generation is
    recent enough (≥ our current one) is the caller's decision.
    """
    payload = multi_decrypt_simple(
        data,
        identity.x25519_secret,
        identity.x25519_public,
        ed25519_pk_to_x25519(group_ed25519_pk),
        KICKED_DOMAIN,
    )
    pubkey, digits = payload[:KEY_SIZE], payload[KEY_SIZE:]
    if pubkey != identity.x25519_public:
        raise NotARecipient("kicked note names another member")
    if not digits.isdigit() or len(digits) > 19 or (digits[:1] == b"0" and len(digits) > 1):
        raise MalformedMultiEncrypted("kicked note generation is not a decimal number")
    return KickedNote(int(digits))
