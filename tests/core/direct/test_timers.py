"""Disappearing settings of direct conversations: learnt newest-first, applied on send."""

from __future__ import annotations

from typing import Any, cast

from bridge.core.direct.accounts import Account
from bridge.core.direct.inbound import DirectInbound
from bridge.core.direct.timers import ConversationTimers, shorten_after_read
from bridge.db.repos.dm_timers import TimerRecord
from bridge.ids import SessionID
from bridge.session.dm_events import DirectMessageEvent
from bridge.session.messages import DisappearingSettings, Expiry, ExpiryMode, VisibleMessage

OURS = "05" + "a1" * 32
PEER = "05" + "b2" * 32
HOUR = Expiry(ExpiryMode.DELETE_AFTER_SEND, 3600)


class MemoryStore:
    def __init__(self, *records: TimerRecord) -> None:
        self.records = {(r.account, r.peer): r for r in records}

    async def all(self) -> list[TimerRecord]:
        return list(self.records.values())

    async def put(self, record: TimerRecord) -> None:
        self.records[(record.account, record.peer)] = record


async def test_newest_setting_wins_and_survives_a_restart() -> None:
    store = MemoryStore()
    timers = ConversationTimers(store)
    await timers.load()
    assert timers.get(OURS, PEER) is None
    assert await timers.learn(OURS, PEER, HOUR, 100)
    assert not await timers.learn(OURS, PEER, HOUR, 101)  # same setting
    assert not await timers.learn(OURS, PEER, None, 50)  # older than what is known
    assert timers.lookup_for(OURS)(PEER) == HOUR
    again = ConversationTimers(store)
    await again.load()
    assert again.get(OURS, PEER) == HOUR
    assert await again.learn(OURS, PEER, Expiry(ExpiryMode.OFF, 0), 200)
    assert again.get(OURS, PEER) is None and store.records[(OURS, PEER)].mode == 0


class FakeClient:
    def __init__(self, expiry: Expiry | None) -> None:
        self.expiry = expiry
        self.shortened: list[tuple[list[str], int]] = []

    def expiry_for(self, peer: str) -> Expiry | None:
        return self.expiry

    async def shorten_expiry(self, hashes: list[str], expiry_ms: int) -> None:
        self.shortened.append((hashes, expiry_ms))


async def test_only_after_read_conversations_are_shortened() -> None:
    after_send = FakeClient(HOUR)
    await shorten_after_read(cast(Any, after_send), PEER, ["h"])
    assert after_send.shortened == []
    after_read = FakeClient(Expiry(ExpiryMode.DELETE_AFTER_READ, 60))
    await shorten_after_read(cast(Any, after_read), PEER, [])
    await shorten_after_read(cast(Any, after_read), PEER, ["h1", "h2"])
    assert [h for h, _ in after_read.shortened] == [["h1", "h2"]]


class NoPortal:
    async def existing(self, ours: str, peer: str) -> None:
        return None

    async def auto_reply(self, client: Any, event: Any) -> None:
        raise AssertionError("not the bot")


async def test_inbound_learns_from_messages_timer_changes_and_phone_copies() -> None:
    timers = ConversationTimers(MemoryStore())
    handler = DirectInbound(
        chats=cast(Any, NoPortal()),
        ghosts=cast(Any, None),
        messages=cast(Any, None),
        cursors=cast(Any, None),
        own_ids=cast(Any, None),
        portal_lock=lambda portal_id: None,
        bot=cast(Any, None),
        timers=timers,
    )
    user = Account(OURS, 1, "@alice:example.test")

    def event(content: Any, ts: int, **kw: Any) -> DirectMessageEvent:
        sender = kw.pop("sender", PEER)
        conversation = SessionID.parse(PEER)
        return DirectMessageEvent(
            SessionID.parse(sender), ts, f"h{ts}", content, conversation=conversation, **kw
        )

    # The phone's copy of a timer change (the owner set it on their phone).
    change = DisappearingSettings(ExpiryMode.DELETE_AFTER_SEND, 3600, PEER)
    await handler.handle(user, cast(Any, None), event(change, 10, sender=OURS, is_sync=True))
    assert timers.get(OURS, PEER) == HOUR
    # A later message of the peer carrying another setting.
    later = VisibleMessage(body="x", expiry=Expiry(ExpiryMode.DELETE_AFTER_READ, 60))
    handler._handle_visible = _ignore  # type: ignore[method-assign]
    await handler.handle(user, cast(Any, None), event(later, 20))
    assert timers.get(OURS, PEER) == Expiry(ExpiryMode.DELETE_AFTER_READ, 60)
    # A message without expiration fields changes nothing; our own echo neither.
    await handler.handle(user, cast(Any, None), event(VisibleMessage(body="y"), 30))
    off = VisibleMessage(body="z", expiry=Expiry(ExpiryMode.OFF, 0))
    echo = event(off, 40, sender=OURS, is_sync=True, from_this_client=True)
    await handler.handle(user, cast(Any, None), echo)
    assert timers.get(OURS, PEER) == Expiry(ExpiryMode.DELETE_AFTER_READ, 60)


async def _ignore(*args: Any) -> None:
    return None
