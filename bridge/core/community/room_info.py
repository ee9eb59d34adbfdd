"""A community room's name, description and image on its portal (Session → Matrix).

The room object (docs/session-protocol.md §5.4) comes when the bridge starts following a room and
again from ``pollInfo`` whenever ``info_updates`` changes. The bot sets what changed since it
last applied the room's info: ``m.room.name``, ``m.room.topic`` and ``m.room.avatar`` (the
room image, a room file, downloaded with the bot's client and uploaded as the bot). What was
applied is remembered in the key/value table, so restarts and repeated polls send nothing,
and the image is fetched only when its file id changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, replace

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import ContentURI, RoomID

from bridge.core.convert.media import sniff_mimetype
from bridge.core.convert.names import clean_name
from bridge.db.records import PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.errors import SessionError
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import RoomInfo

log = logging.getLogger("bridge.core.community.room_info")

MAX_ROOM_IMAGE_BYTES = 10_000_000


@dataclass(frozen=True, slots=True)
class AppliedInfo:
    """What the bot last set on a portal from its community room."""

    name: str | None = None
    topic: str | None = None
    image_id: int | None = None


def info_key(portal_id: int) -> str:
    """The key/value key of a portal's applied room info."""
    return f"community-info:{portal_id}"


def parse_applied(text: str | None) -> AppliedInfo | None:
    """The stored :class:`AppliedInfo`, or ``None`` if nothing (valid) was stored."""
    if not text:
        return None
    try:
        obj = json.loads(text)
        image_id = obj.get("image_id")
        return AppliedInfo(
            name=obj.get("name") if isinstance(obj.get("name"), str) else None,
            topic=obj.get("topic") if isinstance(obj.get("topic"), str) else None,
            image_id=image_id if isinstance(image_id, int) else None,
        )
    except (ValueError, AttributeError):
        return None


class CommunityRoomInfo:
    """Applies community room info to portals, as the bot."""

    def __init__(self, *, bot: IntentAPI, portals: PortalRepo, kv: KVRepo) -> None:
        self._bot = bot
        self._portals = portals
        self._kv = kv

    async def apply(
        self, portal: PortalRecord, client: CommunityClient, token: str, info: RoomInfo
    ) -> None:
        """Set what changed; failures are logged and retried at the next change or restart."""
        if portal.mxid is None or portal.unbridged_at is not None:
            return
        room = RoomID(portal.mxid)
        before = parse_applied(await self._kv.get(info_key(portal.id)))
        applied = before or AppliedInfo()
        name = clean_name(info.name) or token
        updated = portal
        try:
            if before is None or before.name != name:
                await self._bot.set_room_name(room, name)
                applied = replace(applied, name=name)
                updated = replace(updated, name=name)
            if before is None or before.topic != info.description:
                if before is not None or info.description:
                    await self._bot.set_room_topic(room, info.description)
                applied = replace(applied, topic=info.description)
                updated = replace(updated, topic=info.description)
            if (before is None and info.image_id is not None) or (
                before is not None and before.image_id != info.image_id
            ):
                mxc = await self._set_image(room, client, token, info.image_id)
                applied = replace(applied, image_id=info.image_id)
                updated = replace(updated, avatar_mxc=mxc, avatar_hash=_image_hash(info))
        except (MatrixError, SessionError) as e:
            log.warning("Could not update portal %s from its community room: %s", room, e)
        finally:
            if applied != before:
                await self._kv.set(info_key(portal.id), json.dumps(dataclasses.asdict(applied)))
            if updated != portal:
                await self._portals.update(updated)

    async def _set_image(
        self, room: RoomID, client: CommunityClient, token: str, image_id: int | None
    ) -> str | None:
        if image_id is None:
            await self._bot.set_room_avatar(room, None)
            return None
        data = await client.download(token, image_id)
        mimetype = sniff_mimetype(data)
        if (
            len(data) > MAX_ROOM_IMAGE_BYTES
            or mimetype is None
            or not mimetype.startswith("image/")
        ):
            log.warning("Community room image %s/%d is not a usable image", token, image_id)
            return None
        mxc: ContentURI = await self._bot.upload_media(data, mime_type=mimetype)
        await self._bot.set_room_avatar(room, mxc)
        return str(mxc)


def _image_hash(info: RoomInfo) -> str | None:
    return None if info.image_id is None else f"sogs-file:{info.image_id}"
