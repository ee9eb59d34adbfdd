"""What the bridge reads from Matrix through an intent: member names and media."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import ClientError
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import ContentURI, RoomID, UserID

log = logging.getLogger("bridge.matrix.reads")

MediaDownload = Callable[[str], Awaitable[bytes]]

# What a read may fail with when the homeserver refuses it or cannot be reached.
_READ_FAILED = (MatrixRequestError, MatrixConnectionError, ClientError, TimeoutError)


async def member_display_name(intent: IntentAPI, room_id: str, mxid: str) -> str:
    """``mxid``'s display name in ``room_id``, or ``mxid`` itself when it has none or the
    member cannot be read (a missing name only makes a label plainer)."""
    try:
        member = await intent.get_room_member_info(RoomID(room_id), UserID(mxid))
    except _READ_FAILED as e:
        log.debug("The name of %s in %s was not read: %s", mxid, room_id, e)
        return mxid
    except Exception:
        log.exception("The name of %s in %s was not read", mxid, room_id)
        return mxid
    return (member.displayname if member and member.displayname else None) or mxid


def media_download(intent: IntentAPI) -> MediaDownload:
    """A function that downloads an ``mxc://`` URL as ``intent``."""

    async def download(mxc: str) -> bytes:
        data: bytes = await intent.download_media(ContentURI(mxc))
        return data

    return download


async def global_display_name(intent: IntentAPI, mxid: str) -> str | None:
    """``mxid``'s global display name, or None when it has none or it cannot be read."""
    try:
        name = await intent.get_displayname(UserID(mxid))
    except _READ_FAILED as e:
        log.debug("The display name of %s was not read: %s", mxid, e)
        return None
    except Exception:
        log.exception("The display name of %s was not read", mxid)
        return None
    return str(name) if name else None
