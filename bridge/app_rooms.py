"""The management-room finder the bot, the reminders and ``export contacts`` share, kept out
of bridge/app.py (one instance per bridge: ``BridgeApp.management_rooms``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.db.repos.users import UserRepo

__all__ = ["UserManagementRooms"]


class UserManagementRooms:
    """Management rooms as :class:`BotController` needs them, stored in the user table.

    One instance per bridge (``BridgeApp.management_rooms``), write-through: every Matrix
    message asks, so a room is read once per user. That a user has *no* room is remembered
    for :attr:`NO_ROOM_TTL_S` only, so a room made later is found (by the reminders and
    ``finalize``, which ask for admins' rooms, too)."""

    NO_ROOM_TTL_S = 60.0

    def __init__(self, users: UserRepo, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._users = users
        self._clock = clock
        self._known: dict[str, str] = {}
        self._missing: dict[str, float] = {}  # user → when they were found without a room

    async def get_management_room(self, mxid: str) -> str | None:
        if mxid in self._known:
            return self._known[mxid]
        since = self._missing.get(mxid)
        if since is not None and self._clock() - since < self.NO_ROOM_TTL_S:
            return None
        user = await self._users.get_user(mxid)
        room = user.management_room if user else None
        self._remember(mxid, room)
        return room

    async def set_management_room(self, mxid: str, room_id: str | None) -> None:
        self._known.pop(mxid, None)  # unknown until the write is committed
        self._missing.pop(mxid, None)
        await self._users.set_management_room(mxid, room_id)
        self._remember(mxid, room_id)

    def _remember(self, mxid: str, room: str | None) -> None:
        if room is not None:
            self._missing.pop(mxid, None)
            self._known[mxid] = room
            return
        now = self._clock()
        if len(self._missing) >= 10_000:  # many users without a room: forget the expired
            self._missing = {
                k: t for k, t in self._missing.items() if now - t < self.NO_ROOM_TTL_S
            }
        self._missing[mxid] = now
