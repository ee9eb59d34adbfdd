"""Session group attachments into Matrix media (Session → Matrix, docs/matrix-side.md §7).

A group message's attachment is downloaded through the receiving identity's 1:1 client (the
file servers the bridge may download from), checked against Session's size limit and uploaded
to the homeserver as the author's ghost; anything that cannot be bridged becomes a notice
saying why. Attachments Info ``D`` covers are not fetched.
"""

from __future__ import annotations

import logging
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError

from bridge.core.convert import media
from bridge.matrix.media import upload_file
from bridge.session.client import SessionClient
from bridge.session.errors import SessionError
from bridge.session.messages import Attachment
from bridge.session.netguard import DestinationRefused

log = logging.getLogger("bridge.core.group.attachments")

__all__ = ["attachment_part"]


def _name(attachment: Attachment) -> str:
    if attachment.file_name:
        return attachment.file_name
    if attachment.is_voice_message:
        return "voice message"
    return media.default_filename(attachment.content_type or media.OCTET_STREAM)


def _failed(attachment: Attachment, reason: str) -> dict[str, Any]:
    body = f"A file ({_name(attachment)}) was sent in the Session group but {reason}."
    return {"msgtype": "m.notice", "body": body, "m.mentions": {}}


async def attachment_part(
    client: SessionClient | None,
    ghost: IntentAPI,
    attachment: Attachment,
    *,
    expired: bool,
    room_id: str,
) -> dict[str, Any]:
    """The Matrix content of one attachment (a media message, or a notice saying why not)."""
    if expired:
        return _failed(attachment, "the group's settings deleted it")
    if attachment.size is not None and attachment.size > media.MAX_SESSION_FILE_BYTES:
        return _failed(attachment, f"it is too large ({media.human_size(attachment.size)})")
    if client is None:
        return _failed(attachment, "it could not be downloaded")
    try:
        data = await client.download_attachment(attachment)
    except DestinationRefused as e:
        log.warning("Group attachment %s not fetched: %s", _name(attachment), e)
        return _failed(attachment, "it is not on a file server this bridge downloads from")
    except SessionError as e:
        log.warning("Group attachment %s not bridged: %s", _name(attachment), e)
        return _failed(attachment, "it could not be downloaded")
    mimetype = attachment.content_type or media.OCTET_STREAM
    try:
        uploaded = await upload_file(
            ghost, room_id, data, mime_type=mimetype, filename=_name(attachment)
        )
    except MatrixRequestError as e:
        if e.http_status == 413:
            size = media.human_size(len(data))
            return _failed(attachment, f"it is larger than this Matrix server accepts ({size})")
        raise
    content = media.media_content(
        mxc=uploaded.mxc,
        mimetype=mimetype,
        size=len(data),
        filename=_name(attachment),
        width=attachment.width,
        height=attachment.height,
        voice=attachment.is_voice_message,
        caption=attachment.caption,
    )
    return uploaded.apply(content)
