"""The file cipher of encrypted rooms (bridge/matrix/media.py; README, Encryption).

Matrix's encrypted attachments: AES-256-CTR with a fresh key and IV per file and the SHA-256
of the ciphertext, as ``mautrix.crypto.attachments`` implements them. Imported only with
``encryption.allow`` on (``mautrix.crypto`` needs python-olm).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.errors import DecryptionError

from bridge.matrix.media import EncryptedFileError


class AttachmentCipher:
    """Encrypts and decrypts files; asks ``is_encrypted`` (the Olm machine's) about rooms."""

    def __init__(self, is_encrypted: Callable[[str], Awaitable[bool]]) -> None:
        self._is_encrypted = is_encrypted

    async def is_encrypted(self, room_id: str) -> bool:
        return await self._is_encrypted(room_id)

    def encrypt_file(self, data: bytes) -> tuple[bytes, dict[str, Any]]:
        ciphertext, file = encrypt_attachment(data)
        serialized: dict[str, Any] = file.serialize()
        serialized.pop("url", None)
        return ciphertext, serialized

    def decrypt_file(self, data: bytes, file: Mapping[str, Any]) -> bytes:
        try:
            key, iv = file["key"]["k"], file["iv"]
            digest = file["hashes"]["sha256"]
        except (KeyError, TypeError) as e:
            raise EncryptedFileError("the file's key, iv or hash is missing") from e
        if not all(isinstance(v, str) for v in (key, iv, digest)):
            raise EncryptedFileError("the file's key, iv or hash is not a string")
        try:
            return decrypt_attachment(data, key, digest, iv)
        except (DecryptionError, ValueError) as e:
            raise EncryptedFileError(f"the file could not be decrypted: {e}") from e
