"""Management rooms (bridge/app.py ``UserManagementRooms``): rooms are read once per user,
and "no room" is remembered only for a while, so a room made later is found."""

from __future__ import annotations

from typing import Any, cast

from bridge.app import UserManagementRooms
from bridge.db.records import MatrixUserRecord


class FakeUsers:
    def __init__(self) -> None:
        self.rooms: dict[str, str | None] = {}
        self.reads = 0

    async def get_user(self, mxid: str) -> MatrixUserRecord | None:
        self.reads += 1
        if mxid not in self.rooms:
            return None
        return MatrixUserRecord(mxid=mxid, management_room=self.rooms[mxid], created_at=0)

    async def set_management_room(self, mxid: str, room: str | None) -> None:
        self.rooms[mxid] = room


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rooms_with(users: FakeUsers, clock: Clock) -> UserManagementRooms:
    return UserManagementRooms(cast(Any, users), clock=clock)


async def test_a_room_is_read_once() -> None:
    users, clock = FakeUsers(), Clock()
    users.rooms["@a:hs"] = "!m:hs"
    rooms = rooms_with(users, clock)
    assert await rooms.get_management_room("@a:hs") == "!m:hs"
    clock.now += 10 * UserManagementRooms.NO_ROOM_TTL_S
    assert await rooms.get_management_room("@a:hs") == "!m:hs"
    assert users.reads == 1


async def test_no_room_is_remembered_for_a_while_only() -> None:
    users, clock = FakeUsers(), Clock()
    rooms = rooms_with(users, clock)
    assert await rooms.get_management_room("@admin:hs") is None
    assert await rooms.get_management_room("@admin:hs") is None
    assert users.reads == 1  # not read again at once (every Matrix message asks)
    users.rooms["@admin:hs"] = "!new:hs"  # made by another writer (e.g. another instance)
    clock.now += UserManagementRooms.NO_ROOM_TTL_S + 1
    assert await rooms.get_management_room("@admin:hs") == "!new:hs"
    assert users.reads == 2


async def test_a_room_set_here_is_known_at_once() -> None:
    users, clock = FakeUsers(), Clock()
    rooms = rooms_with(users, clock)
    assert await rooms.get_management_room("@b:hs") is None
    await rooms.set_management_room("@b:hs", "!b:hs")
    assert await rooms.get_management_room("@b:hs") == "!b:hs"
    await rooms.set_management_room("@b:hs", None)
    assert await rooms.get_management_room("@b:hs") is None
    assert users.reads == 1
