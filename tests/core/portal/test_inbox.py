from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mautrix.errors import MatrixConnectionError

from bridge.backoff import Backoff
from bridge.core.portal import failures
from bridge.core.portal import inbox as matrix_inbox
from bridge.core.portal.inbox import InboxItem, MatrixInbox
from tests.tasks import cancel_and_wait


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

    async def requeue(self, event: dict[str, Any], txn_id: str) -> None:
        self.rows[self.next_id] = InboxItem(self.next_id, event["room_id"], event)
        self.next_id += 1


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
    await cancel_and_wait(task)


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
    await cancel_and_wait(task)


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
    await cancel_and_wait(task)


async def test_events_stored_before_a_crash_are_handled_after_restart() -> None:
    store = MemoryStore()
    await store.accept("1", "h", [ev("a", 1), ev("a", 2)])  # stored, never handled
    seen: list[str] = []

    async def handle(event: dict[str, Any]) -> None:
        seen.append(event["event_id"])

    task = await run_inbox(MatrixInbox(store, handle, handle))
    await wait_until(lambda: seen == ["$a1", "$a2"])
    await cancel_and_wait(task)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matrix_inbox, "TRANSIENT_BACKOFF", Backoff(0.001, 0.002))
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001, 0.002))


async def test_a_permanent_failure_is_parked_and_the_room_goes_on(fast_retries: None) -> None:
    store, calls, seen, parked = MemoryStore(), [], [], []

    async def handle(event: dict[str, Any]) -> None:
        calls.append(event["event_id"])
        if event["event_id"] == "$a1":
            raise ValueError("a bug")
        seen.append(event["event_id"])

    async def park(event: dict[str, Any], error: str, tries: int) -> None:
        parked.append((event["event_id"], error, tries))

    inbox = MatrixInbox(store, handle, handle, park=park)
    task = await run_inbox(inbox)
    await inbox.accept_transaction("1", "h", [ev("a", 1), ev("a", 2)], [])
    await wait_until(lambda: seen == ["$a2"])
    assert calls.count("$a1") == failures.PERMANENT_ATTEMPTS
    assert parked == [("$a1", "ValueError: a bug", failures.PERMANENT_ATTEMPTS)]
    await wait_until(lambda: not store.rows)
    await cancel_and_wait(task)


async def test_a_transient_failure_waits_as_long_as_it_takes_in_order(fast_retries: None) -> None:
    # The homeserver is away for longer than the old limit of three tries: nothing is
    # parked or dropped, the room keeps its order, and another room goes on meanwhile.
    store, seen, parked = MemoryStore(), [], []
    outage = {"left": 12}

    async def handle(event: dict[str, Any]) -> None:
        if event["room_id"] == "a" and outage["left"] > 0:
            outage["left"] -= 1
            raise MatrixConnectionError("Cannot connect to host")
        seen.append(event["event_id"])

    async def park(event: dict[str, Any], error: str, tries: int) -> None:
        parked.append(event["event_id"])

    inbox = MatrixInbox(store, handle, handle, park=park)
    task = await run_inbox(inbox)
    await inbox.accept_transaction("1", "h", [ev("a", 1), ev("a", 2), ev("b", 1)], [])
    await wait_until(lambda: len(seen) == 3)
    assert [e for e in seen if e.startswith("$a")] == ["$a1", "$a2"]
    assert outage["left"] == 0 and parked == []
    await wait_until(lambda: not store.rows)
    await cancel_and_wait(task)


async def test_a_database_error_while_parking_waits_too(fast_retries: None) -> None:
    store, parked, tries = MemoryStore(), [], {"park": 0}

    async def handle(event: dict[str, Any]) -> None:
        raise ValueError("a bug")

    async def park(event: dict[str, Any], error: str, n: int) -> None:
        tries["park"] += 1
        if tries["park"] < 3:
            raise ConnectionRefusedError("the database is down")
        parked.append(event["event_id"])

    task = await run_inbox(MatrixInbox(store, handle, handle, park=park))
    await store.accept("1", "h", [ev("a", 1)])
    await wait_until(lambda: parked == ["$a1"] and not store.rows)
    await cancel_and_wait(task)


class FlakyStore(MemoryStore):
    """Reading the stored events fails once (the database went away)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    async def pending(self, after_id: int, limit: int) -> list[InboxItem]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionRefusedError("the database is down")
        return await super().pending(after_id, limit)


async def test_a_pump_run_again_after_it_failed_handles_every_stored_event() -> None:
    # The supervisor starts the pump again after it failed: what its queues held when it
    # failed is handled, and so is what came in since.
    store, seen, release = FlakyStore(), [], asyncio.Event()

    async def handle(event: dict[str, Any]) -> None:
        if event["event_id"] == "$a1":
            await release.wait()
        seen.append(event["event_id"])

    inbox = MatrixInbox(store, handle, handle)
    task = await run_inbox(inbox)
    await inbox.accept_transaction("1", "h", [ev("a", 1), ev("a", 2)], [])
    await asyncio.sleep(0.05)  # $a1 is in hand, $a2 queued behind it
    store.fail_next = True
    await inbox.accept_transaction("2", "h", [ev("a", 3)], [])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(task, 1)
    release.set()
    task = await run_inbox(inbox)
    await wait_until(lambda: seen == ["$a1", "$a2", "$a3"])
    await wait_until(lambda: not store.rows)
    await cancel_and_wait(task)
