"""The bot's state sends go one at a time per room, and power-level changes never undo each
other (bridge/matrix/room_levels.py). A fake intent stands in for mautrix's: it yields to the
event loop inside every request, as the HTTP round trip would, so that the interleavings the
homeserver saw (two power-level events built on the same state) happen here too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mautrix.types import EventID, EventType, PowerLevelStateEventContent, RoomID, UserID

from bridge.keyed_locks import KeyedLocks
from bridge.matrix.room_levels import RoomLevels, one_state_send_per_room

ROOM = RoomID("!room:example.org")
OTHER = RoomID("!other:example.org")


class FakeIntent:
    """Power levels kept as the homeserver would, and mautrix's cache that hands out the
    cached object itself."""

    def __init__(self) -> None:
        self.server: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, PowerLevelStateEventContent] = {}
        self.sent: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.most_rooms_at_once = 0

    async def send_state_event(
        self, room_id: RoomID, event_type: EventType, content: Any, state_key: str = ""
    ) -> EventID:
        room = str(room_id)
        self.in_flight[room] = self.in_flight.get(room, 0) + 1
        self.most_at_once[room] = max(self.most_at_once.get(room, 0), self.in_flight[room])
        busy = sum(1 for n in self.in_flight.values() if n)
        self.most_rooms_at_once = max(self.most_rooms_at_once, busy)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if event_type == EventType.ROOM_POWER_LEVELS:
            self.server[room] = content.serialize()
        self.sent.append((room, str(event_type)))
        self.in_flight[room] -= 1
        return EventID(f"$event{len(self.sent)}")

    async def get_power_levels(
        self, room_id: RoomID, ignore_cache: bool = False
    ) -> PowerLevelStateEventContent:
        room = str(room_id)
        if not ignore_cache and room in self.cache:
            return self.cache[room]
        await asyncio.sleep(0)
        levels = PowerLevelStateEventContent.deserialize(self.server.get(room, {"users": {}}))
        self.cache[room] = levels
        return levels

    async def set_power_levels(
        self, room_id: RoomID, content: PowerLevelStateEventContent
    ) -> EventID:
        return await self.send_state_event(room_id, EventType.ROOM_POWER_LEVELS, content)


def _raise(mxid: str, level: int):  # type: ignore[no-untyped-def]
    def edit(levels: PowerLevelStateEventContent) -> bool:
        if levels.get_user_level(UserID(mxid)) == level:
            return False
        levels.set_user_level(UserID(mxid), level)
        return True

    return edit


async def test_changes_side_by_side_all_reach_the_room() -> None:
    bot = FakeIntent()
    levels = RoomLevels(bot)  # type: ignore[arg-type]
    users = [f"@user{i}:example.org" for i in range(8)]
    await asyncio.gather(*(levels.change(ROOM, _raise(u, 50)) for u in users))
    assert bot.server[str(ROOM)]["users"] == dict.fromkeys(users, 50)
    assert bot.most_at_once[str(ROOM)] == 1


async def test_without_the_lock_a_change_undoes_the_other() -> None:
    """The failure the lock prevents, shown on the same fake: read, edit, write side by side."""
    bot = FakeIntent()

    async def unlocked(mxid: str) -> None:
        current = await bot.get_power_levels(ROOM, ignore_cache=True)
        current.set_user_level(UserID(mxid), 50)
        await bot.set_power_levels(ROOM, current)

    await asyncio.gather(unlocked("@a:example.org"), unlocked("@b:example.org"))
    assert len(bot.server[str(ROOM)]["users"]) == 1


async def test_an_edit_that_changes_nothing_sends_nothing() -> None:
    bot = FakeIntent()
    bot.server[str(ROOM)] = {"users": {"@a:example.org": 50}}
    levels = RoomLevels(bot)  # type: ignore[arg-type]
    assert await levels.change(ROOM, _raise("@a:example.org", 50)) is False
    assert bot.sent == []
    assert await levels.change(ROOM, _raise("@a:example.org", 100)) is True
    assert bot.sent == [(str(ROOM), "m.room.power_levels")]


async def test_the_cached_levels_are_not_edited_in_place() -> None:
    bot = FakeIntent()
    levels = RoomLevels(bot)  # type: ignore[arg-type]

    def edit_then_fail(content: PowerLevelStateEventContent) -> bool:
        content.set_user_level(UserID("@a:example.org"), 100)
        raise RuntimeError("the edit gave up")

    with pytest.raises(RuntimeError, match="gave up"):
        await levels.change(ROOM, edit_then_fail)
    cached = bot.cache[str(ROOM)]
    assert cached.get_user_level(UserID("@a:example.org")) == 0


async def test_state_sends_of_one_room_take_turns_and_rooms_do_not_wait() -> None:
    bot = FakeIntent()
    one_state_send_per_room(bot)  # type: ignore[arg-type]
    sends = [
        bot.send_state_event(room, EventType.ROOM_NAME, {"name": f"n{i}"})
        for i in range(5)
        for room in (ROOM, OTHER)
    ]
    await asyncio.gather(*sends)
    assert bot.most_at_once == {str(ROOM): 1, str(OTHER): 1}
    assert bot.most_rooms_at_once == 2
    assert len(bot.sent) == 10


async def test_unwrapped_state_sends_overlap() -> None:
    """Without the wrap the fake does send side by side (so the test above means something)."""
    bot = FakeIntent()
    await asyncio.gather(
        *(bot.send_state_event(ROOM, EventType.ROOM_NAME, {"name": str(i)}) for i in range(3))
    )
    assert bot.most_at_once[str(ROOM)] == 3


async def test_the_lock_of_a_key_is_shared_while_in_use_and_dropped_after() -> None:
    locks = KeyedLocks()
    first = locks.of("a")
    assert locks.of("a") is first
    assert locks.of("b") is not first
    async with first:
        assert locks.of("a").locked()
    del first
    assert not locks.of("a").locked()
