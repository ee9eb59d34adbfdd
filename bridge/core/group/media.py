"""Attachments of group portals (docs/matrix-side.md §7).

Matrix → Session: a media message (image, file, voice, video) becomes a :class:`MediaOp`
outbox operation after its announced size is checked against Session's 10 MB limit (the sender
learns at once); when the row is delivered the file is downloaded from the homeserver
(authenticated media), checked again, encrypted and uploaded through the file server the
1:1 client uses, and posted as an attachment pointer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, human_size, matrix_media
from bridge.core.portal.events import Refused
from bridge.core.portal.ops import MediaOp
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.matrix.media import EncryptedFileError, download_file
from bridge.matrix.reads import MediaDownload
from bridge.session.messages import Attachment, Quote
from bridge.session.messages.model import VOICE_MESSAGE_FLAG

log = logging.getLogger("bridge.core.group.media")

__all__ = ["fetch_media", "media_op", "pointer_for", "too_large_text"]


def too_large_text(size: int) -> str:
    return (
        f"The file is too large for Session ({human_size(size)}; Session accepts at most "
        f"{human_size(MAX_SESSION_FILE_BYTES)})."
    )


def media_op(content: Mapping[str, Any], quote: Quote | None = None) -> MediaOp:
    """The outbox operation of a Matrix media message, or :class:`Refused` saying why not."""
    file = matrix_media(content)
    if file is None:
        raise Refused(
            "This file was not sent to Session: only files, images, videos and audio can be sent."
        )
    if file.size is not None and file.size > MAX_SESSION_FILE_BYTES:
        raise Refused(too_large_text(file.size))
    return MediaOp.of(file, quote)


async def fetch_media(download: MediaDownload, media: MediaOp) -> bytes:
    """The file's bytes from the homeserver, within Session's limit (else a failure)."""
    try:
        data = await download_file(download, media.url, media.file)
    except EncryptedFileError as e:
        raise PermanentFailure(str(e)) from e
    except MatrixRequestError as e:
        log.info("The homeserver did not give %s: %s", media.url, e)
        text = f"the homeserver did not give the file (HTTP {e.http_status})"
        if e.http_status is not None and 400 <= e.http_status < 500 and e.http_status != 429:
            raise PermanentFailure(text) from e
        raise TemporaryFailure(text) from e
    except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as e:
        raise TemporaryFailure(f"cannot reach the homeserver ({type(e).__name__})") from e
    if len(data) > MAX_SESSION_FILE_BYTES:
        raise PermanentFailure(too_large_text(len(data)))
    return data


def pointer_for(uploaded: Attachment, media: MediaOp) -> Attachment:
    """The uploaded file's pointer with what Matrix said of it (voice flag, dimensions)."""
    return dataclasses.replace(
        uploaded,
        flags=VOICE_MESSAGE_FLAG if media.voice else 0,
        width=media.width,
        height=media.height,
    )
