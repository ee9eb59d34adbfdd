"""One asyncio lock per key (a room, a Session account), made on first use and dropped when
nobody holds or waits for it."""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """``locks.of(key)``: the lock of ``key``; the same lock for as long as anyone holds or
    awaits it (a weak map: an idle key costs nothing)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def of(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
