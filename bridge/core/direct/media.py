"""Attachments of direct chats, both ways: what only direct chats need on top of
:mod:`bridge.core.convert.media` (docs/matrix-side.md §7).

Session → Matrix: an attachment pointer (docs/session-protocol.md §2.6) is named after its kind
when
it has no file name ("voice message", "image"...), its caption becomes the body, and one that
cannot be bridged becomes a notice. Matrix → Session: a media message becomes an outbox payload
that names the ``mxc://`` URL, after the size is checked against Session's limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.core.convert import media
from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, msgtype_for
from bridge.core.portal.ops import MediaOp
from bridge.session.messages import Attachment

__all__ = [
    "MediaRefused",
    "attachment_content",
    "attachment_failed_notice",
    "attachment_name",
    "human_size",
    "media_payload",
    "too_large_text",
]

_DEFAULT_NAMES = {"m.image": "image", "m.video": "video", "m.audio": "audio", "m.file": "file"}


class MediaRefused(Exception):
    """A Matrix file cannot go to Session; the message is meant for its sender."""


def human_size(size: int) -> str:
    """``12345678`` → ``12.3 MB``; direct-chat notices give kilobytes without decimals."""
    return media.human_size(size, kb_digits=0)


def attachment_name(attachment: Attachment) -> str:
    """The file name to show: the sender's, or one made from the kind."""
    if attachment.file_name:
        return attachment.file_name
    if attachment.is_voice_message:
        return "voice message"
    return _DEFAULT_NAMES[msgtype_for(attachment.content_type)]


def attachment_content(attachment: Attachment, mxc: str, size: int) -> dict[str, Any]:
    """The Matrix content of a Session attachment uploaded as ``mxc``."""
    return media.media_content(
        mxc=mxc,
        mimetype=attachment.content_type or media.OCTET_STREAM,
        size=size,
        filename=attachment_name(attachment),
        width=attachment.width,
        height=attachment.height,
        voice=attachment.is_voice_message,
        caption=attachment.caption,
    )


def attachment_failed_notice(attachment: Attachment, reason: str) -> dict[str, Any]:
    """What the room sees instead of an attachment that could not be bridged."""
    body = f"A file ({attachment_name(attachment)}) was sent from Session but {reason}."
    return {"msgtype": "m.notice", "body": body, "m.mentions": {}}


def media_payload(content: Mapping[str, Any]) -> MediaOp:
    """The outbox operation of a Matrix media message; :class:`MediaRefused` if it cannot go.

    The size in ``info`` is checked here (the sender learns at once); the downloaded size is
    checked again before sending.
    """
    file = media.matrix_media(content)
    if file is None:
        raise MediaRefused("Only files, images, videos and audio can be sent.")
    if file.size is not None and file.size > MAX_SESSION_FILE_BYTES:
        raise MediaRefused(too_large_text(file.size))
    return MediaOp.of(file)


def too_large_text(size: int) -> str:
    return (
        f"The file is too large for Session ({human_size(size)}; Session accepts at most "
        f"{human_size(MAX_SESSION_FILE_BYTES)})."
    )
