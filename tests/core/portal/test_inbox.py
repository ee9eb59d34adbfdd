from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.core.portal import inbox as matrix_inbox
from bridge.core.portal.inbox import InboxItem, MatrixInbox


class MemoryStore:
    """The InboxStore protocol in memory (the SQL one is tested in tests/db)."""

    def __init__(self) -> None:
        self.txns: set[tuple[str, str]] = set()
        self.rows: dict[int, InboxItem] = {}
        self.next_id = 1

    async def accept(self, txn_id: str, body_hash: str, events: list[dict[str, Any]]) -> bool:
        if (txn_id, body_hash) in self.txns:
            return False
        self.txns.add((txn_id, body_hash))
        for event in events:
            self.rows[self.next_id] = InboxItem(self.next_id, event["room_id"], event)
            self.next_id += 1
        return True

    async def pending(self, after_id: int, limit: int) -> list[InboxItem]:
        return [self.rows[i] for i in sorted(self.rows) if i > after_id][:limit]

    async def done(self, item_id: int) -> None:
        del self.rows[item_id]


def ev(room: str, n: int) -> dict[str, Any]:
    return {"room_id": room, "event_id": f"${room}{n}", "type": "m.room.message"}


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def run_inbox(inbox: MatrixInbox) -> asyncio.Task[None]:
    return asyncio.create_task(inbox.run())


async def test_events_of_a_room_are_handled_in_order_and_removed() -> None:
    store, seen = MemoryStore(), []

    async def handle(event: dict[str, Any]) -> None:
        seen.append(event["event_id"])

    inbox = MatrixInbox(store, handle, handle)
    task = await run_inbox(inbox)
    assert await inbox.accept_transaction("1", "h", [ev("a", i) for i in range(20)], [])
    await wait_until(lambda: len(seen) == 20)
    assert seen == [f"$a{i}" for i in range(20)]
    await wait_until(lambda: not store.rows)
    task.cancel()


async def test_a_replayed_transaction_is_processed_once() -> None:
    store, seen, edus = MemoryStore(), [], []

    async def handle(event: dict[str, Any]) -> None:
        seen.append(event["event_id"])

    async def handle_edu(edu: dict[str, Any]) -> None:
        edus.append(edu)

    inbox = MatrixInbox(store, handle, handle_edu)
    task = await run_inbox(inbox)
    typing = {"type": "m.typing", "room_id": "a"}
    assert await inbox.accept_transaction("5", "h", [ev("a", 1)], [typing]) is True
    assert await inbox.accept_transaction("5", "h", [ev("a", 1)], [typing]) is False
    await wait_until(lambda: not store.rows)
    assert seen == ["$a1"]
    assert edus == [typing]
    task.cancel()


async def test_a_slow_room_does_not_block_another() -> None:
    store, seen = MemoryStore(), []
    release = asyncio.Event()

    async def handle(event: dict[str, Any]) -> None:
        if event["room_id"] == "slow":
            await release.wait()
        seen.append(event["event_id"])

    inbox = MatrixInbox(store, handle, handle)
    task = await run_inbox(inbox)
    await inbox.accept_transaction("1", "h", [ev("slow", 1), ev("fast", 1)], [])
    await wait_until(lambda: seen == ["$fast1"])
    release.set()
    await wait_until(lambda: len(seen) == 2)
    task.cancel()


async def test_events_stored_before_a_crash_are_handled_after_restart() -> None:
    store = MemoryStore()
    await store.accept("1", "h", [ev("a", 1), ev("a", 2)])  # stored, never handled
    seen: list[str] = []

    async def handle(event: dict[str, Any]) -> None:
        seen.append(event["event_id"])

    task = await run_inbox(MatrixInbox(store, handle, handle))
    await wait_until(lambda: seen == ["$a1", "$a2"])
    task.cancel()


async def test_failing_handler_is_retried_then_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matrix_inbox, "RETRY_BASE_DELAY", 0.001)
    store, calls, seen = MemoryStore(), [], []

    async def handle(event: dict[str, Any]) -> None:
        calls.append(event["event_id"])
        if event["event_id"] == "$a1":
            raise RuntimeError("boom")
        seen.append(event["event_id"])

    inbox = MatrixInbox(store, handle, handle)
    task = await run_inbox(inbox)
    await inbox.accept_transaction("1", "h", [ev("a", 1), ev("a", 2)], [])
    await wait_until(lambda: seen == ["$a2"])
    assert calls.count("$a1") == matrix_inbox.HANDLER_ATTEMPTS
    assert not store.rows
    task.cancel()
