"""The bot's state events in a room, one at a time; power-level changes made from the room's
current levels (docs/architecture.md §4.3).

Two state events the bot sends into one room side by side fork the room's event graph: the
homeserver builds both on the same latest event. When a fork holds two power-level events,
state resolution orders the later events of the room by that fork's power levels rather than
by which came first, and a state event can lose to the one it replaced (seen with Synapse: a
too-long room name the bot had put back came back). And two power-level changes made side by
side each read the levels, change their user and write the whole event back: the second write
undoes the first.

So :func:`one_state_send_per_room` makes the bot's intent send a room's state events in turn,
and :class:`RoomLevels` holds a room's lock from reading its levels to writing them, reads the
homeserver's copy (mautrix's cache hands out the cached object itself, which a change would
edit in place, and may miss a change another client made), edits a copy and sends only what
changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.types import EventID, PowerLevelStateEventContent, RoomID

from bridge.keyed_locks import KeyedLocks

__all__ = ["LevelsEdit", "RoomLevels", "one_state_send_per_room"]

# Edits the levels in place; True if it changed something (only then are they sent).
LevelsEdit = Callable[[PowerLevelStateEventContent], bool]


def one_state_send_per_room(intent: IntentAPI) -> None:
    """Make ``intent`` (the bot's) send the state events of one room one after another.

    mautrix's helpers (``set_room_name``, ``set_power_levels``, …) all go through the
    instance's ``send_state_event``, so wrapping it covers them.
    """
    send = intent.send_state_event
    locks = KeyedLocks()

    async def in_turn(room_id: RoomID, *args: Any, **kwargs: Any) -> EventID:
        async with locks.of(str(room_id)):
            event_id: EventID = await send(room_id, *args, **kwargs)
            return event_id

    intent.send_state_event = in_turn  # type: ignore[method-assign]


class RoomLevels:
    """Power-level changes of the bot, one at a time per room (see the module docstring)."""

    def __init__(self, bot: IntentAPI) -> None:
        self._bot = bot
        self._locks = KeyedLocks()

    async def change(self, room: RoomID, edit: LevelsEdit) -> bool:
        """Apply ``edit`` to the room's current levels and send them if it changed something;
        True if it did. Matrix errors (the bot lacks the power, the room is gone) propagate."""
        async with self._locks.of(str(room)):
            current = await self._bot.get_power_levels(room, ignore_cache=True)
            levels = PowerLevelStateEventContent.deserialize(current.serialize())
            if not edit(levels):
                return False
            await self._bot.set_power_levels(room, levels)
            return True
