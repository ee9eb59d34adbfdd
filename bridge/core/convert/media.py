"""Pure pieces of bridging files: Matrix media content shapes and what they say about a file.

Session → Matrix: :func:`media_content` builds ``m.image``/``m.video``/``m.audio``/``m.file``
content with the ``info`` fields Element uses (docs/matrix-side.md §7): ``mimetype``, ``size`` and,
when known, ``w``/``h`` (from the Session pointer, else read from the image header), plus the
voice-message keys for Session voice notes; :func:`caption_parts` makes the text of a message
with files the caption of its first file (MSC2530). Matrix → Session: :func:`matrix_media`
reads what the outbound path needs from a Matrix media message (its caption is the text posted
with the file). Nothing here does I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from bridge.core.convert.matrix_to_text import strip_unsafe

__all__ = [
    "MAX_SESSION_FILE_BYTES",
    "MEDIA_MSGTYPES",
    "OCTET_STREAM",
    "MatrixMedia",
    "caption_parts",
    "default_filename",
    "human_size",
    "image_mime_type",
    "image_size",
    "matrix_media",
    "media_content",
    "msgtype_for",
    "sniff_mimetype",
    "with_caption",
]

MAX_SESSION_FILE_BYTES = 10_000_000  # Session's upload limit (docs/session-protocol.md §7.1)
MEDIA_MSGTYPES = ("m.image", "m.video", "m.audio", "m.file")
OCTET_STREAM = "application/octet-stream"

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "application/pdf": "pdf",
}


def msgtype_for(mimetype: str | None, voice: bool = False) -> str:
    """``m.image``, ``m.video``, ``m.audio`` or ``m.file`` for a MIME type (a Session voice
    note is always ``m.audio``)."""
    if voice:
        return "m.audio"
    major = (mimetype or "").split("/", 1)[0].lower()
    return {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(major, "m.file")


def sniff_mimetype(data: bytes) -> str | None:
    """The MIME type of common image, audio, video and PDF files from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand.startswith(b"M4A"):
            return "audio/mp4"
        return "video/mp4"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def image_mime_type(data: bytes) -> str | None:
    """The MIME type of an image (PNG, JPEG, GIF, WebP, AVIF) from its magic bytes, or
    ``None`` if ``data`` is not one."""
    mimetype = sniff_mimetype(data)
    return mimetype if mimetype is not None and mimetype.startswith("image/") else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, GIF, JPEG or WebP image, or ``None``; never raises."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if data.startswith((b"GIF87a", b"GIF89a")) and len(data) >= 10:
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:
        return None
    return None


def default_filename(mimetype: str, index: int = 0) -> str:
    """A file name for an attachment that came without one (``image.jpg``, ``file-2.bin``)."""
    kind = mimetype.split("/", 1)[0] if msgtype_for(mimetype) != "m.file" else "file"
    extension = _EXTENSIONS.get(mimetype.lower(), "bin")
    return f"{kind}{'-' + str(index + 1) if index else ''}.{extension}"


def human_size(size: int, *, kb_digits: int = 1) -> str:
    """``532 bytes``, ``12.3 kB``, ``10.5 MB`` (decimal units, as Session states its limit);
    ``kb_digits`` is how many decimals kilobytes get."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.{kb_digits}f} kB"
    return f"{size / 1_000_000:.1f} MB"


def media_content(
    *,
    mxc: str,
    mimetype: str,
    size: int,
    filename: str,
    width: int | None = None,
    height: int | None = None,
    voice: bool = False,
    caption: str | None = None,
) -> dict[str, Any]:
    """A Matrix media message for an uploaded file (docs/matrix-side.md §2.8, §7).

    ``body`` is the ``caption`` if any (MSC2530), else the file name; ``m.mentions`` is
    empty. Dimensions are set for images and videos when both are known and positive.
    """
    msgtype = msgtype_for(mimetype, voice)
    info: dict[str, Any] = {"mimetype": mimetype, "size": size}
    if msgtype in ("m.image", "m.video") and width and height and width > 0 and height > 0:
        info["w"], info["h"] = width, height
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": caption or filename,
        "filename": filename,
        "url": mxc,
        "info": info,
        "m.mentions": {},
    }
    if voice:
        # MSC3245 voice message, as Element recognises it; the waveform is unknown.
        content["org.matrix.msc1767.audio"] = {"waveform": []}
        content["org.matrix.msc3245.voice"] = {}
    return content


def with_caption(media: Mapping[str, Any], text: Mapping[str, Any]) -> dict[str, Any] | None:
    """``media`` (a file's content) with the text content ``text`` as its caption (MSC2530,
    spec v1.10): ``body`` is the caption, ``filename`` stays the file's name, the formatting
    and ``m.mentions`` are the text's. ``None`` when ``media`` is no file (the notice about a
    file that could not be bridged) or already has another caption of its own.
    """
    if media.get("msgtype") not in MEDIA_MSGTYPES or not text.get("body"):
        return None
    own = media.get("body")
    if own and own != media.get("filename") and own != text["body"]:
        return None
    captioned = {k: v for k, v in media.items() if k not in ("format", "formatted_body")}
    captioned["body"] = text["body"]
    if "formatted_body" in text:
        captioned["format"] = text.get("format")
        captioned["formatted_body"] = text["formatted_body"]
    captioned["m.mentions"] = text.get("m.mentions", {})
    return captioned


def caption_parts(
    text: Mapping[str, Any] | None, files: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The Matrix events of a Session message with text and files, in order.

    Session sends a caption as the text of the message that carries the file: it becomes the
    caption of the first file (one event, which Element shows as an image with its caption).
    Without a file to carry it (none, or the first could not be bridged) the text is an event
    of its own, before the files.
    """
    parts = [dict(file) for file in files]
    if text is None:
        return parts
    if parts and (captioned := with_caption(parts[0], text)) is not None:
        return [captioned, *parts[1:]]
    return [dict(text), *parts]


@dataclass(frozen=True, slots=True)
class MatrixMedia:
    """A Matrix media message as the outbound path needs it.

    ``caption`` is the text to post with the file: the ``body`` when it differs from the file
    name (MSC2530, spec v1.10), else empty.
    """

    msgtype: str
    mxc: str
    filename: str
    mimetype: str
    size: int | None
    caption: str
    width: int | None = None
    height: int | None = None
    voice: bool = False
    #: The EncryptedFile JSON (key, iv, hashes, ``url`` = :attr:`mxc`) of an encrypted file.
    file: Mapping[str, Any] | None = None


# Matrix's canonical JSON allows integers up to 2**53 - 1 (docs/matrix-side.md §1.3); a
# homeserver may still pass on bigger ones. Session's attachment fields are 32-bit.
MAX_JSON_INT = 2**53 - 1
MAX_DIMENSION = 2**32 - 1


def _int(value: object, limit: int = MAX_JSON_INT) -> int | None:
    """``value`` if it is an integer from 0 to ``limit``, else None (a hint to ignore)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit:
        return value
    return None


def _decryptable(file: object) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``file`` has what decrypting an encrypted attachment takes (its key, IV and
    SHA-256, as strings; docs/matrix-side.md §5)."""
    if not isinstance(file, Mapping):
        return False
    key, hashes = file.get("key"), file.get("hashes")
    return (
        isinstance(key, Mapping)
        and isinstance(key.get("k"), str)
        and isinstance(file.get("iv"), str)
        and isinstance(hashes, Mapping)
        and isinstance(hashes.get("sha256"), str)
    )


def matrix_media(content: Mapping[str, Any]) -> MatrixMedia | None:
    """The file of an ``m.image``/``m.video``/``m.audio``/``m.file`` content, or ``None``.

    An encrypted file (``file`` instead of ``url``, in encrypted rooms) is named by the URL
    in ``file`` and keeps ``file`` for its decryption; one without its key, IV or hash is
    ``None``, as is a non-``mxc://`` URL.
    """
    msgtype = content.get("msgtype")
    raw_file = content.get("file")
    file = dict(raw_file) if "url" not in content and _decryptable(raw_file) else None
    url = file.get("url") if file is not None else content.get("url")
    if msgtype not in MEDIA_MSGTYPES or not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    info = content.get("info")
    info = info if isinstance(info, Mapping) else {}
    body = content.get("body") if isinstance(content.get("body"), str) else ""
    filename = content.get("filename")
    filename = filename if isinstance(filename, str) and filename else body
    caption = body if body and body != filename else ""
    # Both reach Session as text: nothing a terminal or a bidi-aware reader would obey.
    filename = strip_unsafe(str(filename or "")).replace("\n", " ")
    caption = strip_unsafe(caption)
    mimetype = info.get("mimetype")
    mimetype = mimetype if isinstance(mimetype, str) and "/" in mimetype else OCTET_STREAM
    return MatrixMedia(
        msgtype=str(msgtype),
        mxc=url,
        filename=filename or default_filename(mimetype),
        mimetype=mimetype,
        size=_int(info.get("size")),
        caption=caption,
        width=_int(info.get("w"), MAX_DIMENSION),
        height=_int(info.get("h"), MAX_DIMENSION),
        voice="org.matrix.msc3245.voice" in content,
        file=file,
    )
