"""Encryption of Session seeds at rest (pure).

Seeds are stored only as ``version || nonce || XSalsa20-Poly1305(seed)`` under a 32-byte key
that lives in the config or the environment (``bridge.secrets_key``), never in the database. A
database dump alone therefore reveals no Session account.
"""

from __future__ import annotations

import base64
import binascii
import hmac

import nacl.exceptions
import nacl.secret
import nacl.utils

FORMAT_VERSION = b"\x01"
KEY_LENGTH = nacl.secret.SecretBox.KEY_SIZE


class SecretsKeyError(ValueError):
    """``bridge.secrets_key`` is missing or not base64 of 32 bytes."""


class SeedDecryptionError(Exception):
    """A stored seed could not be decrypted (wrong key or damaged row)."""


def parse_secrets_key(text: str) -> bytes:
    """The raw key from its base64 form, or :class:`SecretsKeyError`."""
    if not text:
        raise SecretsKeyError(
            "bridge.secrets_key is empty: run with -g to generate one, or set "
            "BRIDGE_BRIDGE_SECRETS_KEY to base64 of 32 random bytes"
        )
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise SecretsKeyError("bridge.secrets_key is not valid base64") from e
    if len(key) != KEY_LENGTH:
        raise SecretsKeyError(f"bridge.secrets_key must decode to {KEY_LENGTH} bytes")
    return key


class SeedVault:
    """Encrypts and decrypts Session seeds with the bridge's secrets key."""

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)

    def __repr__(self) -> str:
        return "SeedVault(<key hidden>)"

    def encrypt(self, seed: bytes) -> bytes:
        nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
        return FORMAT_VERSION + bytes(self._box.encrypt(seed, nonce))

    def decrypt(self, stored: bytes) -> bytes:
        if not stored.startswith(FORMAT_VERSION):
            raise SeedDecryptionError("unknown stored seed format")
        try:
            return bytes(self._box.decrypt(stored[1:]))
        except nacl.exceptions.CryptoError as e:
            raise SeedDecryptionError(
                "stored seed does not decrypt with bridge.secrets_key"
            ) from e


def derive_pickle_key(secrets_key: bytes) -> str:
    """The key that pickles the end-to-bridge encryption store (Olm/Megolm state at rest):
    HMAC-SHA256 of a fixed label under ``bridge.secrets_key``, so it needs no secret of its own
    and a database dump alone unpickles nothing (README, Encryption)."""
    digest = hmac.new(secrets_key, b"session-matrix-bridge e2be pickle key v1", "sha256")
    return base64.b64encode(digest.digest()).decode("ascii")
