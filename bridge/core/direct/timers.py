"""Disappearing messages in direct chats (docs/session-protocol.md §2.14).

Each conversation (a login and a Session peer) has a setting: off, delete after sending or
delete after reading, with a timer. It is learnt from the peer's (or the owner's phone's)
timer-change messages and from the expiration fields every message carries, the newest by
sent timestamp winning, and kept across restarts (:class:`~bridge.db.repos.dm_timers.
TimerStore`). Every message the login sends then carries it (``SessionClient.expiry_for``):
its type and timer, and for delete-after-send a storage TTL of the timer.
"""

from __future__ import annotations

import time

from bridge.db.repos.dm_timers import TimerRecord, TimerStore
from bridge.session.client import SessionClient
from bridge.session.messages import Expiry, ExpiryMode


class ConversationTimers:
    """The settings of every direct conversation, cached in memory; see the module doc."""

    def __init__(self, store: TimerStore) -> None:
        self._store = store
        self._settings: dict[tuple[str, str], TimerRecord] = {}
        self._loaded = False

    async def load(self) -> None:
        """Read every stored setting, once (before the first login's client starts)."""
        if self._loaded:
            return
        for record in await self._store.all():
            self._settings.setdefault((record.account, record.peer), record)
        self._loaded = True

    def get(self, account: str, peer: str) -> Expiry | None:
        """The setting of ``account``'s conversation with ``peer``; None when off."""
        record = self._settings.get((account, peer))
        if record is None or record.timer_seconds <= 0:
            return None
        mode = _mode(record.mode)
        return Expiry(mode, record.timer_seconds) if mode != ExpiryMode.OFF else None

    def lookup_for(self, account: str) -> _Lookup:
        """The ``expiry_for`` of ``account``'s client."""
        return _Lookup(self, account)

    async def learn(self, account: str, peer: str, expiry: Expiry | None, at_ms: int) -> bool:
        """Take ``expiry`` (None: off) as the setting if it is newer than what is known;
        True if the setting changed."""
        old = self._settings.get((account, peer))
        if old is not None and old.at_ms >= at_ms:
            return False
        mode, timer = (expiry.mode, expiry.timer_seconds) if expiry else (ExpiryMode.OFF, 0)
        if mode == ExpiryMode.OFF or timer <= 0:
            mode, timer = ExpiryMode.OFF, 0
        record = TimerRecord(account, peer, int(mode), timer, at_ms)
        self._settings[(account, peer)] = record
        await self._store.put(record)
        if old is None:
            return mode != ExpiryMode.OFF
        return (old.mode, old.timer_seconds) != (record.mode, record.timer_seconds)


class _Lookup:
    def __init__(self, timers: ConversationTimers, account: str) -> None:
        self._timers = timers
        self._account = account

    def __call__(self, peer: str) -> Expiry | None:
        return self._timers.get(self._account, peer)


def _mode(value: int) -> ExpiryMode:
    try:
        return ExpiryMode(value)
    except ValueError:
        return ExpiryMode.OFF


async def shorten_after_read(client: SessionClient, peer: str, hashes: list[str]) -> None:
    """In a delete-after-read conversation, what was read now expires a timer from now: the
    reader cuts its stored copies with ``expire`` (docs/session-protocol.md §2.14, §6.8)."""
    expiry = client.expiry_for(peer)
    if expiry is None or expiry.mode != ExpiryMode.DELETE_AFTER_READ or not hashes:
        return
    await client.shorten_expiry(hashes, int(time.time() * 1000) + expiry.timer_seconds * 1000)
