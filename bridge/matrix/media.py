"""Files of portals, encrypted in encrypted rooms (README, Encryption; docs/matrix-side.md §7).

A file the bridge posts into an encrypted room is encrypted first (AES-CTR, the key in the
event's ``file`` object, which Megolm encrypts with the rest of the event) and only the
ciphertext is uploaded: the homeserver never holds the plaintext. A file a Matrix user posts
there names its ciphertext with ``file`` instead of ``url``; it is decrypted after the
download. Every portal kind uploads and downloads its files through :func:`upload_file` and
:func:`download_file`.

The cipher itself needs python-olm's side of mautrix (``mautrix.crypto``), so it is installed
here by the encryption wiring only when ``encryption.allow`` is on; without it every room is
treated as unencrypted and an encrypted file cannot be read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mautrix.appservice import IntentAPI

MediaDownload = Callable[[str], Awaitable[bytes]]

#: What the ciphertext of an encrypted file is uploaded as (its real type is in ``info``).
CIPHERTEXT_MIMETYPE = "application/octet-stream"


class FileCipher(Protocol):
    async def is_encrypted(self, room_id: str) -> bool: ...

    def encrypt_file(self, data: bytes) -> tuple[bytes, dict[str, Any]]: ...

    def decrypt_file(self, data: bytes, file: Mapping[str, Any]) -> bytes: ...


class EncryptedFileError(Exception):
    """An encrypted file that cannot be read: wrong key or hash, or encryption is off."""


_state: dict[str, FileCipher] = {}


def install(cipher: FileCipher) -> None:
    """Encrypt and decrypt the files of encrypted rooms with ``cipher`` from now on."""
    _state["cipher"] = cipher


def uninstall() -> None:
    _state.pop("cipher", None)


@dataclass(frozen=True)
class UploadedFile:
    """Where an uploaded file is: its ``mxc://`` URL, and ``file`` (the EncryptedFile JSON,
    with that URL) when it was encrypted."""

    mxc: str
    file: dict[str, Any] | None = None

    def apply(self, content: dict[str, Any]) -> dict[str, Any]:
        """``content`` (a media message naming :attr:`mxc` in ``url``) with ``file`` instead
        of ``url`` when the file is encrypted."""
        if self.file is None:
            return content
        placed = {key: value for key, value in content.items() if key != "url"}
        placed["file"] = self.file
        return placed


async def upload_file(
    intent: IntentAPI, room_id: str, data: bytes, *, mime_type: str, filename: str | None
) -> UploadedFile:
    """Upload ``data`` as ``intent`` for a message in ``room_id``, encrypted if the room is."""
    cipher = _state.get("cipher")
    if cipher is None or not await cipher.is_encrypted(room_id):
        mxc = await intent.upload_media(data, mime_type=mime_type, filename=filename)
        return UploadedFile(str(mxc))
    ciphertext, file = cipher.encrypt_file(data)
    mxc = await intent.upload_media(ciphertext, mime_type=CIPHERTEXT_MIMETYPE)
    return UploadedFile(str(mxc), {**file, "url": str(mxc)})


async def download_file(
    download: MediaDownload, mxc: str, file: Mapping[str, Any] | None
) -> bytes:
    """The plaintext of the file at ``mxc`` (``file``: its EncryptedFile JSON if encrypted);
    :class:`EncryptedFileError` if it cannot be decrypted."""
    data = await download(mxc)
    if file is None:
        return data
    cipher = _state.get("cipher")
    if cipher is None:
        raise EncryptedFileError("the file is encrypted and encryption is off")
    return cipher.decrypt_file(data, file)
