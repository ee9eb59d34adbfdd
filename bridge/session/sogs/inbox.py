"""Blinded inbox messages ("community message requests"), docs/session-protocol.md §5.10.

Two accounts that only know each other's blinded ids on one community server can exchange
messages through the server's ``/inbox``. The shared key is

    K = BLAKE2b-256(point || kA_sender || kB_recipient)

where ``point`` is the local scalar times the other party's blinded point (sender: ``a·kB``,
recipient: ``b·kA``; for blind25 the blinded scalars, since the two factors differ). The
payload is ``0x00 || XChaCha20-Poly1305(plaintext || A_sender) || nonce(24)``: it carries the
sender's real Ed25519 key, so the recipient learns the sender's ``05`` Session ID and checks
that it blinds to the sender's blinded id. This module works on plaintext bytes; padding and
protobuf encoding belong to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions

from bridge.ids import BlindedID, SessionID
from bridge.session.blinding import (
    BlindedKeyPair,
    blind15_key_pair,
    blind25_key_pair,
    session_id_matches_blinded_id,
)
from bridge.session.errors import CryptoError, DecodeError, InvalidInput
from bridge.session.keys import Identity, InvalidPublicKeyError

__all__ = [
    "InboxDecryptError",
    "InboxMessage",
    "InboxPeerKeyError",
    "InboxSenderMismatchError",
    "MalformedInboxMessageError",
    "NotOurConversationError",
    "decrypt_blinded_message",
    "encrypt_for_blinded_recipient",
]

VERSION = 0x00
NONCE_LENGTH = 24
_KEY_LENGTH = 32
_MAC_LENGTH = 16
MIN_PAYLOAD_LENGTH = 1 + _MAC_LENGTH + _KEY_LENGTH + NONCE_LENGTH


class MalformedInboxMessageError(DecodeError):
    """The payload is too short or has an unknown version byte."""


class InboxDecryptError(CryptoError):
    """The payload does not decrypt with the key shared by these two blinded ids."""


class InboxSenderMismatchError(CryptoError):
    """The sender key inside the message does not blind to the claimed sender id."""


class InboxPeerKeyError(CryptoError):
    """The other party's blinded id is not a usable curve point."""


class NotOurConversationError(InvalidInput):
    """Neither blinded id is this account's, or the two ids are of different versions."""


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A decrypted inbox message and its sender, both blinded and real."""

    plaintext: bytes
    sender: SessionID
    sender_blinded: BlindedID


def _own_key_pair(identity: Identity, server_pubkey: bytes, version15: bool) -> BlindedKeyPair:
    if version15:
        return blind15_key_pair(identity, server_pubkey)
    return blind25_key_pair(identity, server_pubkey)


def _shared_key(
    identity: Identity,
    own: BlindedKeyPair,
    other: BlindedID,
    sender: BlindedID,
    recipient: BlindedID,
) -> bytes:
    """``K = BLAKE2b-256(scalar·other || kA_sender || kB_recipient)`` (§5.10)."""
    if own.blinded_id.is_blind15:
        # blind15: both parties share the factor k, so the unblinded scalar a is used.
        scalar = sodium.crypto_core_ed25519_scalar_reduce(identity.x25519_secret.ljust(64, b"\0"))
    else:
        scalar = own.secret_scalar
    try:
        point = sodium.crypto_scalarmult_ed25519_noclamp(scalar, other.key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise InboxPeerKeyError("the other party's blinded key is not a usable point") from exc
    return hashlib.blake2b(point + sender.key + recipient.key, digest_size=32).digest()


def encrypt_for_blinded_recipient(
    sender: Identity,
    server_pubkey: bytes,
    recipient: BlindedID,
    plaintext: bytes,
    *,
    nonce: bytes | None = None,
) -> bytes:
    """Encrypt ``plaintext`` to a blinded recipient on a server (§5.10).

    The sender blinds itself with the recipient's version (15 or 25). ``nonce`` (24 bytes) is
    random unless given, which only tests should do. Raises :class:`InboxPeerKeyError` when the
    recipient id is not a usable key.
    """
    nonce = secrets.token_bytes(NONCE_LENGTH) if nonce is None else nonce
    if len(nonce) != NONCE_LENGTH:
        raise InvalidInput("an inbox nonce is 24 bytes")
    own = _own_key_pair(sender, server_pubkey, recipient.is_blind15)
    key = _shared_key(sender, own, recipient, own.blinded_id, recipient)
    ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext + sender.ed25519_public, None, nonce, key
    )
    return bytes([VERSION]) + ciphertext + nonce


def _open(payload: bytes, key: bytes) -> bytes:
    if len(payload) < MIN_PAYLOAD_LENGTH:
        raise MalformedInboxMessageError("inbox message is too short")
    if payload[0] != VERSION:
        raise MalformedInboxMessageError(f"unknown inbox message version {payload[0]}")
    ciphertext, nonce = payload[1:-NONCE_LENGTH], payload[-NONCE_LENGTH:]
    try:
        return bytes(
            sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, None, nonce, key)
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise InboxDecryptError("inbox message does not decrypt") from exc


def _sender_session_id(sender_ed25519: bytes) -> SessionID:
    try:
        x_public = sodium.crypto_sign_ed25519_pk_to_curve25519(sender_ed25519)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise InboxSenderMismatchError("sender key in the message is not a valid key") from exc
    return SessionID.from_key(bytes(x_public))


def decrypt_blinded_message(
    identity: Identity,
    server_pubkey: bytes,
    sender: BlindedID,
    recipient: BlindedID,
    payload: bytes,
) -> InboxMessage:
    """Decrypt an inbox (we are ``recipient``) or outbox (we are ``sender``) message.

    ``sender``/``recipient`` are the item's blinded ids as the server reports them. Returns
    the plaintext and the sender's real Session ID, after checking that it blinds to
    ``sender``.
    """
    if sender.prefix != recipient.prefix:
        raise NotOurConversationError("sender and recipient ids are of different versions")
    own = _own_key_pair(identity, server_pubkey, sender.is_blind15)
    if hmac.compare_digest(own.blinded_id.raw, recipient.raw):
        other = sender
    elif hmac.compare_digest(own.blinded_id.raw, sender.raw):
        other = recipient
    else:
        raise NotOurConversationError("neither blinded id belongs to this account")
    plain = _open(payload, _shared_key(identity, own, other, sender, recipient))
    message, sender_ed25519 = plain[:-_KEY_LENGTH], plain[-_KEY_LENGTH:]
    sender_id = _sender_session_id(sender_ed25519)
    try:
        matches = session_id_matches_blinded_id(sender_id, sender, server_pubkey)
    except InvalidPublicKeyError:  # pragma: no cover - a converted key is always a valid u
        matches = False
    if not matches:
        raise InboxSenderMismatchError("sender key does not blind to the sender id")
    return InboxMessage(message, sender_id, sender)
