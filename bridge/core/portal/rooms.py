"""Matrix rooms of portals: creating, attaching to an existing room, detaching, and sending
into them what came from Session (:func:`send_to_portal`).

Every portal carries the bridge-info state under both event types (docs/matrix-side.md §3.1);
encrypted rooms are refused until end-to-bridge encryption exists (docs/architecture.md §5).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.errors import IntentError, MatrixRequestError, MNotFound
from mautrix.types import (
    EventID,
    EventType,
    PowerLevelStateEventContent,
    RoomCreatePreset,
    RoomID,
    StateEvent,
    UserID,
)

from bridge import metrics
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.room_levels import RoomLevels
from bridge.matrix.rooms import (
    BRIDGE_INFO_TYPES,
    Channel,
    bridge_info_content,
    bridge_info_state_key,
    portal_power_levels,
)
from bridge.matrix.send import derived_txn_id, send_content

log = logging.getLogger("bridge.core.portal.rooms")

PROTOCOL = {"id": "session", "displayname": "Session"}
#: The content of ``m.room.encryption`` in new portal rooms (encryption.default, README).
MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}
ENCRYPTED_REFUSAL = (
    "This room is encrypted, and this bridge does not work in encrypted rooms "
    "(encryption.allow is off). Use an unencrypted room, or `open` to let me create one."
)
UNENCRYPTED_REFUSAL = (
    "This room is not encrypted, and this bridge only works in encrypted rooms "
    "(encryption.require is on). Turn on encryption in the room's settings, or `open` to let "
    "me create an encrypted room."
)


async def send_to_portal(
    intent: IntentAPI,
    portal: PortalRecord,
    content: Mapping[str, Any],
    *,
    origin: str,
    key: str,
    timestamp: int | None = None,
    event_type: EventType = EventType.ROOM_MESSAGE,
) -> EventID:
    """Send ``content`` into the portal's room as ``intent``, at ``timestamp`` (ms) if given.

    ``key`` names, within the portal, what on the Session side caused the send, and ``origin``
    the kind of portal: the transaction id derives from them, so a re-delivered Session
    message reuses it and Synapse returns the first event instead of a duplicate.
    """
    assert portal.mxid is not None
    event_id = await send_content(
        intent,
        portal.mxid,
        content,
        txn_id=derived_txn_id(origin, f"{portal.id}:{key}"),
        event_type=event_type,
        timestamp=timestamp,
    )
    metrics.bridged(metrics.SESSION_TO_MATRIX, portal.kind.value)
    return event_id


class PortalRoomError(Exception):
    """A room cannot become (or stop being) a portal; the message is meant for the user."""


class PortalRooms:
    """Creates and attaches portal rooms as the bridge bot."""

    def __init__(self, bot: IntentAPI, portals: PortalRepo, bot_mxid: str) -> None:
        self._bot = bot
        self._portals = portals
        self._bot_mxid = bot_mxid
        # Power-level changes, one at a time per room, from the room's current levels.
        self.levels = RoomLevels(bot)
        # encryption.allow: encrypted rooms are bridged, not refused (README, Encryption).
        self.allow_encrypted = False
        # encryption.default: new portal rooms are created encrypted.
        self.encrypt_new = False
        # encryption.require: unencrypted rooms are refused (and new ones created encrypted).
        self.require_encrypted = False

    def _encryption_state(self) -> list[dict[str, Any]]:
        """``m.room.encryption`` for the initial state of a new room, if it is to have it."""
        if not self.allow_encrypted or not (self.encrypt_new or self.require_encrypted):
            return []
        return [{"type": "m.room.encryption", "state_key": "", "content": MEGOLM}]

    async def encryption_refusal(
        self, room_id: str, intent: IntentAPI | None = None
    ) -> str | None:
        """Why the encryption settings refuse ``room_id`` as a portal (None: they do not):
        encrypted with ``allow`` off, or unencrypted with ``require`` on."""
        if self.allow_encrypted and not self.require_encrypted:
            return None
        encrypted = await self.is_encrypted(room_id, intent)
        if encrypted and not self.allow_encrypted:
            return ENCRYPTED_REFUSAL
        if not encrypted and self.require_encrypted:
            return UNENCRYPTED_REFUSAL
        return None

    async def is_encrypted(self, room_id: str, intent: IntentAPI | None = None) -> bool:
        """Whether the room has ``m.room.encryption``, read as ``intent`` (default: the bot)."""
        try:
            await (intent or self._bot).get_state_event(RoomID(room_id), EventType.ROOM_ENCRYPTION)
        except MNotFound:
            return False
        return True

    async def is_room_admin(self, room_id: str, mxid: str) -> bool:
        """Whether ``mxid`` may change the room's power levels (a room admin)."""
        levels = await self._power_levels(room_id)
        # In room v12 the creators have unlimited power and are not listed in ``users``.
        create = await self._bot.get_state_event(
            RoomID(room_id), EventType.ROOM_CREATE, format="event"
        )
        needed = levels.get_event_level(EventType.ROOM_POWER_LEVELS)
        creator = create if isinstance(create, StateEvent) else None
        return levels.get_user_level(UserID(mxid), creator) >= needed

    async def _power_levels(self, room_id: str) -> PowerLevelStateEventContent:
        content = await self._bot.get_state_event(RoomID(room_id), EventType.ROOM_POWER_LEVELS)
        assert isinstance(content, PowerLevelStateEventContent)
        return content

    async def send_bridge_info(
        self, room_id: str, channel: Channel, *, sender: IntentAPI | None = None
    ) -> None:
        """The bridge-info state, under both event types, sent by ``sender`` (the bot)."""
        content = bridge_info_content(self._bot_mxid, PROTOCOL, channel)
        state_key = bridge_info_state_key(PROTOCOL["id"], channel)
        for event_type in BRIDGE_INFO_TYPES:
            await (sender or self._bot).send_state_event(
                RoomID(room_id),
                EventType.find(event_type, EventType.Class.STATE),
                content,
                state_key,
            )

    async def create_room(
        self,
        channel: Channel,
        *,
        creator: IntentAPI | None = None,
        name: str | None = None,
        topic: str = "",
        is_direct: bool = False,
        invitees: Sequence[str] = (),
    ) -> str:
        """A new private room created by ``creator`` (the bot), with the bridge-info state.

        A ghost that creates a room is empowered by the create event (in room v12 creators
        have unlimited power and must not be listed in ``users``), so the levels name the bot.
        """
        info = bridge_info_content(self._bot_mxid, PROTOCOL, channel)
        state_key = bridge_info_state_key(PROTOCOL["id"], channel)
        room_id = await (creator or self._bot).create_room(
            name=name,
            topic=topic,
            preset=RoomCreatePreset.PRIVATE,
            is_direct=is_direct,
            invitees=[UserID(m) for m in invitees],
            power_level_override=portal_power_levels(self._bot_mxid),
            initial_state=[
                *({"type": t, "state_key": state_key, "content": info} for t in BRIDGE_INFO_TYPES),
                {
                    "type": "io.element.functional_members",
                    "state_key": "",
                    "content": {"service_members": [self._bot_mxid]},
                },
                *self._encryption_state(),
            ],
        )
        return str(room_id)

    async def create(
        self,
        kind: PortalKind,
        session_key: str,
        channel: Channel,
        *,
        topic: str = "",
        invitees: Sequence[str] = (),
        admins: Sequence[str] = (),
        public: bool = False,
    ) -> PortalRecord:
        """A new room for the portal (kind, session_key), created by the bot, with the users
        invited; ``admins`` get power level 100; ``public`` rooms anyone may join (join rule
        ``public``; not published in the room directory)."""
        portal = await self._portals.get_or_create(kind, session_key, name=channel.displayname)
        if portal.mxid and portal.unbridged_at is None:
            raise PortalRoomError(f"That is already bridged to {portal.mxid}.")
        info = bridge_info_content(self._bot_mxid, PROTOCOL, channel)
        state_key = bridge_info_state_key(PROTOCOL["id"], channel)
        levels = portal_power_levels(self._bot_mxid, bot_is_creator=True, admins=admins)
        room_id = await self._bot.create_room(
            name=channel.displayname,
            topic=topic,
            preset=RoomCreatePreset.PUBLIC if public else RoomCreatePreset.PRIVATE,
            invitees=[UserID(m) for m in invitees],
            power_level_override=levels,
            initial_state=[
                *({"type": t, "state_key": state_key, "content": info} for t in BRIDGE_INFO_TYPES),
                {
                    "type": "io.element.functional_members",
                    "state_key": "",
                    "content": {"service_members": [self._bot_mxid]},
                },
                *self._encryption_state(),
            ],
        )
        log.info("Created portal room %s for %s %s", room_id, kind, session_key)
        return await self._portals.set_mxid(portal.id, str(room_id))

    async def attach(
        self, room_id: str, kind: PortalKind, session_key: str, channel: Channel
    ) -> PortalRecord:
        """Make the existing ``room_id`` the portal of (kind, session_key)."""
        if (refusal := await self.encryption_refusal(room_id)) is not None:
            raise PortalRoomError(refusal)
        if (
            existing := await self._portals.get_by_mxid(room_id)
        ) and existing.unbridged_at is None:
            raise PortalRoomError("This room is already bridged; `unbridge` it first.")
        portal = await self._portals.get_or_create(kind, session_key, name=channel.displayname)
        if portal.mxid and portal.mxid != room_id and portal.unbridged_at is None:
            raise PortalRoomError(f"That is already bridged to another room ({portal.mxid}).")
        try:
            await self.send_bridge_info(room_id, channel)
        except (IntentError, MatrixRequestError) as e:
            raise PortalRoomError(
                "I need moderator rights in this room to bridge it (to mark it as bridged and "
                "to let Session users in). Give me moderator rights, then run the command again."
            ) from e
        return await self._portals.set_mxid(portal.id, room_id)

    async def invite(self, room_id: str, mxid: str) -> bool:
        """Invite ``mxid`` as the bot; False if they are in the room already.

        :class:`PortalRoomError` if the homeserver refuses (e.g. they are banned).
        """
        members = await self._bot.get_joined_members(RoomID(room_id))
        if UserID(mxid) in members:
            return False
        try:
            await self._bot.invite_user(RoomID(room_id), UserID(mxid))
        except (IntentError, MatrixRequestError) as e:
            log.info("Could not invite %s to %s: %s", mxid, room_id, e)
            raise PortalRoomError(
                "I could not invite you to that room. Ask one of its members to invite you."
            ) from e
        return True

    async def clear_bridge_info(self, room_id: str) -> None:
        """Blank the bot's bridge-info state (both event types, any state key) with ``{}``,
        the usual way to remove a state event, so clients stop showing the room as bridged."""
        state = await self._bot.api.request(Method.GET, Path.v3.rooms[RoomID(room_id)].state)
        for event in state if isinstance(state, list) else []:
            content = event.get("content") or {}
            if event.get("type") not in BRIDGE_INFO_TYPES or content.get("bridgebot") != (
                self._bot_mxid
            ):
                continue
            event_type = EventType.find(event["type"], EventType.Class.STATE)
            try:
                await self._bot.send_state_event(
                    RoomID(room_id), event_type, {}, event.get("state_key", "")
                )
            except (IntentError, MatrixRequestError) as e:
                log.warning("Could not clear %s in %s: %s", event["type"], room_id, e)

    async def detach(self, portal: PortalRecord, ghosts: Sequence[IntentAPI]) -> None:
        """End the portal: the bridge-info state is cleared, ghosts leave, the mapping is kept
        for history."""
        if portal.mxid:
            try:
                await self.clear_bridge_info(portal.mxid)
            except MatrixRequestError as e:
                log.warning("Could not read the state of %s: %s", portal.mxid, e)
            for ghost in ghosts:
                try:
                    await ghost.leave_room(RoomID(portal.mxid), reason="Bridge removed")
                except MatrixRequestError as e:
                    log.info("Ghost %s could not leave %s: %s", ghost.mxid, portal.mxid, e)
        await self._portals.mark_unbridged(portal.id)
