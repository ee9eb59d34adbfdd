"""Attachments of direct chats, both ways: pure shape conversions (matrix-side.md §7).

Session → Matrix: an attachment pointer (session-protocol.md §2.6) becomes an ``m.image``,
``m.video``, ``m.audio`` (voice notes marked the way Element recognises them) or ``m.file``.
Matrix → Session: a media message becomes an outbox payload that names the ``mxc://`` URL,
after the size is checked against Session's 10 000 000-byte limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.session.messages import Attachment
from bridge.session.messages.model import VOICE_MESSAGE_FLAG

MAX_SESSION_FILE_BYTES = 10_000_000
MEDIA_MSGTYPES = ("m.image", "m.video", "m.audio", "m.file")
_DEFAULT_NAMES = {"m.image": "image", "m.video": "video", "m.audio": "audio", "m.file": "file"}


class MediaRefused(Exception):
    """A Matrix file cannot go to Session; the message is meant for its sender."""


def human_size(size: int) -> str:
    """``12345678`` → ``12.3 MB`` (decimal units, as Session states its limit)."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} kB"
    return f"{size} bytes"


def is_voice(attachment: Attachment) -> bool:
    return bool(attachment.flags & VOICE_MESSAGE_FLAG)


def msgtype_for(content_type: str | None, voice: bool = False) -> str:
    """The Matrix msgtype of a Session attachment's MIME type."""
    mime = (content_type or "").lower()
    if voice or mime.startswith("audio/"):
        return "m.audio"
    if mime.startswith("image/"):
        return "m.image"
    if mime.startswith("video/"):
        return "m.video"
    return "m.file"


def attachment_name(attachment: Attachment) -> str:
    """The file name to show: the sender's, or one made from the kind."""
    if attachment.file_name:
        return attachment.file_name
    msgtype = msgtype_for(attachment.content_type, is_voice(attachment))
    return "voice message" if is_voice(attachment) else _DEFAULT_NAMES[msgtype]


def attachment_content(attachment: Attachment, mxc: str, size: int) -> dict[str, Any]:
    """The Matrix content of a Session attachment uploaded as ``mxc``."""
    voice = is_voice(attachment)
    name = attachment_name(attachment)
    mime = attachment.content_type or "application/octet-stream"
    info: dict[str, Any] = {"mimetype": mime, "size": size}
    if attachment.width and attachment.height:
        info["w"], info["h"] = attachment.width, attachment.height
    content: dict[str, Any] = {
        "msgtype": msgtype_for(mime, voice),
        "body": attachment.caption or name,
        "filename": name,
        "url": mxc,
        "info": info,
        "m.mentions": {},
    }
    if voice:
        content["org.matrix.msc3245.voice"] = {}
        content["org.matrix.msc1767.audio"] = {"waveform": []}
    return content


def attachment_failed_notice(attachment: Attachment, reason: str) -> dict[str, Any]:
    """What the room sees instead of an attachment that could not be bridged."""
    body = f"A file ({attachment_name(attachment)}) was sent from Session but {reason}."
    return {"msgtype": "m.notice", "body": body, "m.mentions": {}}


def media_payload(content: Mapping[str, Any]) -> dict[str, Any]:
    """The outbox payload of a Matrix media message; :class:`MediaRefused` if it cannot go.

    The size in ``info`` is checked here (the sender learns at once); the downloaded size is
    checked again before sending.
    """
    msgtype = content.get("msgtype")
    url = content.get("url")
    if msgtype not in MEDIA_MSGTYPES or not isinstance(url, str) or not url.startswith("mxc://"):
        raise MediaRefused("Only unencrypted files, images, videos and audio can be sent.")
    info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    size = info.get("size")
    if isinstance(size, int) and size > MAX_SESSION_FILE_BYTES:
        raise MediaRefused(too_large_text(size))
    body = content.get("body") if isinstance(content.get("body"), str) else ""
    filename = content.get("filename") if isinstance(content.get("filename"), str) else None
    # MSC2530: a body that differs from the file name is a caption.
    caption = body if filename and body and body != filename else None
    mime = info.get("mimetype") if isinstance(info.get("mimetype"), str) else None
    payload: dict[str, Any] = {
        "op": "media",
        "url": url,
        "filename": filename or body or _DEFAULT_NAMES[str(msgtype)],
        "mimetype": mime or "application/octet-stream",
        "caption": caption,
        "voice": "org.matrix.msc3245.voice" in content,
    }
    for key, name in (("w", "width"), ("h", "height")):
        if isinstance(info.get(key), int):
            payload[name] = info[key]
    return payload


def too_large_text(size: int) -> str:
    return (
        f"The file is too large for Session ({human_size(size)}; Session accepts at most "
        f"{human_size(MAX_SESSION_FILE_BYTES)})."
    )
