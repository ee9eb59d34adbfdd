"""Attachments of community posts into Matrix (Session → Matrix).

A community attachment is either a room file (``{server}/room/{room}/file/{id}``, raw bytes,
docs/session-protocol.md §5.8), fetched with the bot's authenticated client, or a file-server
attachment (§2.6, §7), fetched through :class:`~bridge.core.downloads.AllowedDownloads` (only
known Session servers) and decrypted with the pointer's key. The bytes are uploaded to Matrix
as the sender's ghost and become an ``m.image``/``m.video``/``m.audio``/``m.file`` event
(docs/matrix-side.md §7). Files over Session's 10 MB limit or the homeserver's upload limit, and
files that cannot be fetched or decrypted, become a short ``m.notice`` from the ghost saying
so, so Matrix users know something was sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError

from bridge.core.community.service import parse_community_key
from bridge.core.convert.media import (
    MAX_SESSION_FILE_BYTES,
    OCTET_STREAM,
    default_filename,
    human_size,
    image_size,
    media_content,
    sniff_mimetype,
)
from bridge.core.downloads import origin
from bridge.db.records import PortalRecord
from bridge.matrix.media import upload_file
from bridge.session.attachments import decrypt_pointer_blob
from bridge.session.errors import SessionError
from bridge.session.messages import Attachment
from bridge.session.netguard import DestinationRefused
from bridge.session.sogs.client import CommunityClient

log = logging.getLogger("bridge.core.community.media")

Download = Callable[[str], Awaitable[bytes]]
ClientFor = Callable[[PortalRecord], tuple[CommunityClient, str]]  # the bot's client, token
_ROOM_FILE = re.compile(r"/room/(?P<room>[0-9A-Za-z_-]{1,64})/file/(?P<id>\d{1,18})(?:/[^/]*)?")
DEFAULT_UPLOAD_LIMIT = 50 * 1024 * 1024  # Synapse's default max_upload_size
THREAD_THRESHOLD = 256 * 1024


class AttachmentUnavailable(Exception):
    """An attachment cannot be bridged; the text says why, for Matrix users."""


class UploadLimit:
    """The homeserver's upload limit (``m.upload.size``), asked once, then remembered."""

    def __init__(self, bot: IntentAPI) -> None:
        self._bot = bot
        self._limit: int | None = None

    async def get(self) -> int:
        """The limit in bytes (Synapse's default if the homeserver does not say)."""
        if self._limit is None:
            try:
                config = await self._bot.get_media_repo_config()
                self._limit = int(config.upload_size)
            except MatrixError as e:
                log.warning("Could not read the homeserver's upload limit: %s", e)
                return DEFAULT_UPLOAD_LIMIT
        return self._limit


def room_file_id(url: str, server_base: str) -> tuple[str, int] | None:
    """``(room, file id)`` if ``url`` is a file of a room on the server at ``server_base``."""
    if origin(url) != origin(server_base):
        return None
    path = urlsplit(url).path
    base_path = urlsplit(server_base).path.rstrip("/")
    if not path.startswith(base_path):
        return None
    match = _ROOM_FILE.fullmatch(path[len(base_path) :])
    return (match["room"], int(match["id"])) if match else None


class CommunityMediaIn:
    """Turns the attachments of community posts into Matrix media content."""

    def __init__(
        self, *, client_for: ClientFor, downloads: Download, upload_limit: UploadLimit
    ) -> None:
        self._client_for = client_for
        self._downloads = downloads
        self._upload_limit = upload_limit

    async def content(
        self, portal: PortalRecord, attachment: Attachment, index: int, ghost: IntentAPI
    ) -> dict[str, object]:
        """The Matrix content of one attachment, uploaded as ``ghost``; a notice if it fails."""
        name = attachment.file_name or default_filename(attachment.content_type or "", index)
        try:
            return await self._bridge(portal, attachment, name, ghost)
        except AttachmentUnavailable as e:
            log.info("Attachment %s of a post in portal %d not bridged: %s", name, portal.id, e)
            return {
                "msgtype": "m.notice",
                "body": f"📎 {name}: {e}",
                "m.mentions": {},
            }

    async def _bridge(
        self, portal: PortalRecord, attachment: Attachment, name: str, ghost: IntentAPI
    ) -> dict[str, object]:
        limit = min(MAX_SESSION_FILE_BYTES, await self._upload_limit.get())
        if attachment.size is not None and attachment.size > limit:
            raise AttachmentUnavailable(self._too_large(attachment.size, limit))
        data = await self._fetch(portal, attachment)
        if len(data) > limit:
            raise AttachmentUnavailable(self._too_large(len(data), limit))
        mimetype = attachment.content_type or sniff_mimetype(data) or OCTET_STREAM
        width, height = attachment.width, attachment.height
        if mimetype.startswith("image/") and not (width and height):
            width, height = image_size(data) or (None, None)
        try:
            uploaded = await upload_file(
                ghost, str(portal.mxid), data, mime_type=mimetype, filename=name
            )
        except MatrixError as e:
            log.info("Upload of %s for portal %d failed: %s", name, portal.id, e)
            raise AttachmentUnavailable("the homeserver did not take the file") from e
        content = media_content(
            mxc=uploaded.mxc,
            mimetype=mimetype,
            size=len(data),
            filename=name,
            width=width,
            height=height,
            voice=attachment.is_voice_message,
        )
        return uploaded.apply(content)

    @staticmethod
    def _too_large(size: int, limit: int) -> str:
        return f"too large to bridge ({human_size(size)}; the limit is {human_size(limit)})"

    async def _fetch(self, portal: PortalRecord, attachment: Attachment) -> bytes:
        url = attachment.url
        if not url:
            raise AttachmentUnavailable("the attachment has no URL")
        server, _ = parse_community_key(portal.session_key)
        room_file = room_file_id(url, server.base_url)
        try:
            if room_file is not None:
                client, _ = self._client_for(portal)
                blob = await client.download(*room_file)
            else:
                blob = await self._downloads(url)
        except DestinationRefused as e:
            log.info("Attachment of a post in portal %d refused: %s", portal.id, e)
            raise AttachmentUnavailable(
                "is not on a Session server this bridge downloads from"
            ) from e
        except SessionError as e:
            # The detail (a server address, a connection error) is for the log only.
            log.info("Attachment of a post in portal %d not downloaded: %s", portal.id, e)
            raise AttachmentUnavailable("could not be downloaded") from e
        if not attachment.key:
            return blob  # community room files are neither encrypted nor padded (§5.8)
        try:
            if len(blob) > THREAD_THRESHOLD:
                return await asyncio.to_thread(
                    decrypt_pointer_blob,
                    blob,
                    attachment.key,
                    attachment.digest,
                    attachment.size,
                    url,
                )
            return decrypt_pointer_blob(
                blob, attachment.key, attachment.digest, attachment.size, url
            )
        except SessionError as e:
            raise AttachmentUnavailable(f"could not be decrypted ({type(e).__name__})") from e
