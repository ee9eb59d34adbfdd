"""Attachments and avatars of direct messages through a file server (§2.6, §2.13, §7).

Section numbers (§n) refer to ``docs/session-protocol.md``. Crypto comes from
:mod:`bridge.session.attachments` and :mod:`bridge.session.avatars`; transfer from any
:class:`FileTransfer` (the real one is :class:`bridge.session.files.FileServerClient`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from bridge.session import attachments as att
from bridge.session import avatars
from bridge.session.errors import InvalidInput
from bridge.session.messages import Attachment, Profile

#: Encrypt/decrypt blobs larger than this in a worker thread, not on the event loop.
THREAD_THRESHOLD = 256 * 1024


class Uploaded(Protocol):
    """What an upload returns; only its pointer URL is used (§2.6, §7.1)."""

    @property
    def url(self) -> str:
        """The URL to put in ``AttachmentPointer.url`` / ``profile.profilePicture``."""
        ...


class FileTransfer(Protocol):
    """The file server as direct messages need it."""

    async def upload(self, data: bytes, /) -> Uploaded:
        """Upload an (already encrypted) blob."""
        ...

    async def download(self, url: str, /) -> bytes:
        """Download the blob at a file URL (its ``#…`` fragment is not sent)."""
        ...


async def upload_attachment(
    files: FileTransfer,
    data: bytes,
    filename: str | None,
    content_type: str,
    caption: str | None = None,
) -> Attachment:
    """Encrypt ``data`` the legacy way (§7.2, what desktop sends), upload, build the pointer.

    The pointer carries the 64-byte key, the SHA-256 digest of the blob and the plaintext
    size (§2.6); its ``id`` field is left 0 as desktop does.
    """
    if len(data) > THREAD_THRESHOLD:
        enc = await asyncio.to_thread(att.encrypt_attachment, data)
    else:
        enc = att.encrypt_attachment(data)
    uploaded = await files.upload(enc.blob)
    return Attachment(
        url=uploaded.url,
        key=enc.key,
        size=enc.size,
        digest=enc.digest,
        content_type=content_type,
        file_name=filename,
        caption=caption,
    )


async def download_attachment(files: FileTransfer, attachment: Attachment) -> bytes:
    """Download and decrypt a received attachment (§7.2 MAC + digest, or §7.3).

    Raises :class:`~bridge.session.errors.InvalidInput` for a pointer without URL, the file
    client's errors, and the typed errors of :mod:`bridge.session.attachments`.
    """
    if not attachment.url:
        raise InvalidInput("the attachment has no URL")
    blob = await files.download(attachment.url)
    args = (blob, attachment.key, attachment.digest, attachment.size, attachment.url)
    if len(blob) > THREAD_THRESHOLD:
        return await asyncio.to_thread(att.decrypt_pointer_blob, *args)
    return att.decrypt_pointer_blob(*args)


async def upload_avatar(files: FileTransfer, image: bytes) -> tuple[str, bytes]:
    """Encrypt an avatar under a fresh random profile key and upload it (§7.4).

    Returns the URL and the key, for ``profile.profilePicture`` and ``profileKey`` (§2.13).
    """
    key = os.urandom(avatars.PROFILE_KEY_BYTES)
    uploaded = await files.upload(avatars.encrypt_avatar(image, key))
    return uploaded.url, key


async def download_avatar(files: FileTransfer, profile: Profile) -> bytes:
    """Download and decrypt the avatar a profile points to (§2.13)."""
    if not profile.avatar_url or not profile.avatar_key:
        raise InvalidInput("the profile has no avatar")
    blob = await files.download(profile.avatar_url)
    return avatars.decrypt_avatar_from_url(blob, profile.avatar_key, profile.avatar_url)
