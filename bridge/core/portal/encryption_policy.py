"""What the encryption settings mean for events in existing portals (README, Encryption).

- A portal room that becomes encrypted after it was bridged: with ``encryption.allow`` on the
  bridge goes on there (the state store learned of ``m.room.encryption`` from the event, so
  what it sends there is encrypted from now on); with it off the bot says that messages there
  no longer reach Session.
- ``encryption.require``: a message or reaction in a portal whose room is not encrypted is not
  bridged, and its sender is told why (as mautrix's bridges drop such events).
"""

from __future__ import annotations

from typing import Protocol

from mautrix.types import MessageEvent, ReactionEvent

from bridge.core.portal.router import RoomEvent

NOW_ENCRYPTED_NOTICE = (
    "This room is now encrypted, and this bridge does not work in encrypted rooms "
    "(encryption.allow is off), so messages here will no longer reach Session."
)

UNENCRYPTED_REFUSAL = (
    "Your {what} was not sent to Session: this bridge only works in encrypted rooms "
    "(encryption.require is on) and this room is not encrypted. Turn on encryption in the "
    "room's settings."
)


class RoomEncryption(Protocol):
    """The portal rooms' encryption settings and state (``PortalRooms`` is one)."""

    allow_encrypted: bool
    require_encrypted: bool

    async def is_encrypted(self, room_id: str) -> bool: ...


class EncryptionPolicy:
    """Answers, per event, what the encryption settings say about it."""

    def __init__(self, rooms: RoomEncryption) -> None:
        self._rooms = rooms
        # Rooms seen encrypted (encryption cannot be turned off again): no state read for them.
        self._encrypted: set[str] = set()

    @property
    def allowed(self) -> bool:
        return self._rooms.allow_encrypted

    def became_encrypted(self, room_id: str) -> None:
        self._encrypted.add(room_id)

    async def refusal(self, room_id: str, event: RoomEvent) -> str | None:
        """Why ``event`` is not bridged under ``encryption.require`` (None: it is)."""
        if not self._rooms.require_encrypted:
            return None
        if isinstance(event, MessageEvent):
            what = "message"
        elif isinstance(event, ReactionEvent):
            what = "reaction"
        else:
            return None  # a redaction (never encrypted) or state: not refused
        if room_id in self._encrypted:
            return None
        if await self._rooms.is_encrypted(room_id):
            self._encrypted.add(room_id)
            return None
        return UNENCRYPTED_REFUSAL.format(what=what)
