"""What the bridge reads from Matrix through an intent: member names and media."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mautrix.appservice import IntentAPI
from mautrix.types import ContentURI, RoomID, UserID

MediaDownload = Callable[[str], Awaitable[bytes]]


async def member_display_name(intent: IntentAPI, room_id: str, mxid: str) -> str:
    """``mxid``'s display name in ``room_id``, or ``mxid`` itself when it has none or the
    member cannot be read (a missing name only makes a label plainer)."""
    try:
        member = await intent.get_room_member_info(RoomID(room_id), UserID(mxid))
    except Exception:
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
    except Exception:
        return None
    return str(name) if name else None
