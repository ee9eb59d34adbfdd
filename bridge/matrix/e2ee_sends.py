"""Every message event the bridge sends into an encrypted room goes out encrypted.

mautrix's ``IntentAPI`` (the bot's and every ghost's) sends message events through
``send_message_event``; unlike mautrix's ``Client`` it has no encryption step. With
encryption allowed, :func:`install` wraps that one method once, before any intent exists
(``IntentAPI.__init__`` binds it per instance), so that every send of every portal kind —
text, media, edits, reactions, notices, statuses — is encrypted with the bot's Olm machine
when its room is encrypted, and sent as the ghost (README, Encryption).
"""

from __future__ import annotations

from typing import Any, Protocol

from mautrix.appservice import IntentAPI
from mautrix.types import EventID, EventType, RoomID


class Encryptor(Protocol):
    async def encrypt(
        self, room_id: str, event_type: EventType, content: Any
    ) -> dict[str, Any] | None: ...


_state: dict[str, Encryptor] = {}
_ORIGINAL = IntentAPI.send_message_event


async def _send_message_event(
    self: IntentAPI, room_id: RoomID, event_type: EventType, content: Any, **kwargs: Any
) -> EventID:
    # mautrix's per-instance "join first" wrapper does not reach this replacement for every
    # intent (ghosts' first sends failed with "not in room"): join here, as it would.
    if kwargs.pop("ensure_joined", True):
        await self.ensure_joined(room_id)
    encryptor = _state.get("encryptor")
    if encryptor is not None and event_type != EventType.ROOM_ENCRYPTED:
        encrypted = await encryptor.encrypt(str(room_id), event_type, content)
        if encrypted is not None:
            event_type, content = EventType.ROOM_ENCRYPTED, encrypted
    event_id: EventID = await _ORIGINAL(self, room_id, event_type, content, **kwargs)
    return event_id


def install(encryptor: Encryptor) -> None:
    """Encrypt sends into encrypted rooms with ``encryptor`` from now on."""
    _state["encryptor"] = encryptor
    IntentAPI.send_message_event = _send_message_event  # type: ignore[method-assign]


def uninstall() -> None:
    """Back to mautrix's plain sends (a bridge stopped; tests run several in one process)."""
    _state.pop("encryptor", None)
    IntentAPI.send_message_event = _ORIGINAL  # type: ignore[method-assign]
