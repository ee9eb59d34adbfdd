"""Profile picture encryption (docs/session-protocol.md §2.13, §7.4).

Legacy blobs are ``iv(12) || AES-256-GCM(ciphertext || tag(16))`` under the 32-byte
``profileKey``; a URL whose fragment has ``d`` holds the deterministic attachment format
(§7.3) with the ``profileKey`` as its key.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.session.attachments import decrypt_attachment_deterministic, parse_file_url
from bridge.session.errors import CryptoError, InvalidInput

PROFILE_KEY_BYTES = 32
_IV_BYTES = 12
_TAG_BYTES = 16


class InvalidProfileKey(InvalidInput):
    """A profile key is not 32 bytes."""


class AvatarDecryptionFailed(CryptoError):
    """The avatar blob is too short or does not authenticate under the profile key."""


def encrypt_avatar(image: bytes, profile_key: bytes, *, iv: bytes | None = None) -> bytes:
    """Encrypt an avatar for upload (§7.4): ``iv || AES-256-GCM(image)``; random IV by default."""
    _check_key(profile_key)
    iv = os.urandom(_IV_BYTES) if iv is None else iv
    if len(iv) != _IV_BYTES:
        raise InvalidInput("the avatar IV is 12 bytes")
    return iv + AESGCM(profile_key).encrypt(iv, image, None)


def decrypt_avatar(blob: bytes, profile_key: bytes, *, deterministic: bool = False) -> bytes:
    """Decrypt an avatar blob (§2.13), legacy AES-GCM or (``deterministic``) §7.3 format.

    Raises :class:`InvalidProfileKey`, :class:`AvatarDecryptionFailed` or the
    :mod:`bridge.session.attachments` errors of the deterministic format.
    """
    _check_key(profile_key)
    if deterministic:
        return decrypt_attachment_deterministic(blob, profile_key)
    blob = bytes(blob)
    if len(blob) < _IV_BYTES + _TAG_BYTES:
        raise AvatarDecryptionFailed(f"avatar blob of {len(blob)} bytes is too short")
    try:
        return AESGCM(profile_key).decrypt(blob[:_IV_BYTES], blob[_IV_BYTES:], None)
    except (InvalidTag, ValueError):
        raise AvatarDecryptionFailed("avatar does not decrypt with the profile key") from None


def decrypt_avatar_from_url(blob: bytes, profile_key: bytes, url: str) -> bytes:
    """Decrypt the blob downloaded from ``url``, choosing the format from its fragment."""
    return decrypt_avatar(blob, profile_key, deterministic=parse_file_url(url).deterministic)


def _check_key(profile_key: bytes) -> None:
    if len(profile_key) != PROFILE_KEY_BYTES:
        raise InvalidProfileKey("a profile key is 32 bytes")
