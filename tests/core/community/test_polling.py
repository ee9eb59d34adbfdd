"""A community server's poll loop under the failure policy (docs/architecture.md §4.7): a
poison post is parked and its room and the other rooms go on; a transient failure holds only
its room, committed up to the item before; a server down when its rooms are resumed is joined
once it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mautrix.errors import MatrixConnectionError

from bridge.backoff import Backoff
from bridge.core.community.backfill import BackfillPolicy
from bridge.core.community.polling import Item, ServerLink, ServerPolling
from bridge.core.portal import failures
from bridge.db.records import PortalKind, PortalRecord
from bridge.session.errors import SessionError
from bridge.session.sogs.errors import CommunityUnreachable, RoomNotFound
from bridge.session.sogs.models import CommunityMessage, PollResult, RoomInfo, RoomUpdate
from bridge.session.sogs.urls import CommunityServerRef
from tests.tasks import cancel_and_wait

SERVER = CommunityServerRef("https://sogs.example", bytes(32))


def post(room: str, seqno: int) -> CommunityMessage:
    return CommunityMessage(room, seqno, seqno, None, 0.0, None, False, None, None)


def info(token: str) -> RoomInfo:
    return RoomInfo(token, token, "", 1, 0, 1, None, True, True, True)


class FakeServer:
    """The bot's client for one server: rooms of posts, a cursor per room, and outages."""

    def __init__(self, rooms: dict[str, list[int]]) -> None:
        self.server = SERVER
        self.rooms = rooms
        self.cursors = {token: 0 for token in rooms}
        self.reachable = True
        self.joined: list[str] = []
        self.refused: set[str] = set()  # rooms the server says it does not have
        self.join_requests = 0

    def _join(self, token: str) -> RoomInfo:
        if token in self.refused:
            raise RoomNotFound(f"room {token!r} not found", status=404)
        self.joined.append(token)
        return info(token)

    async def join(self, token: str) -> RoomInfo:
        if not self.reachable:
            raise CommunityUnreachable("cannot reach the server")
        self.join_requests += 1
        return self._join(token)

    async def join_many(self, tokens: list[str]) -> dict[str, RoomInfo | SessionError]:
        """One request for all the rooms: it fails as a whole, or says per room."""
        if not self.reachable:
            raise CommunityUnreachable("cannot reach the server")
        self.join_requests += 1
        outcomes: dict[str, RoomInfo | SessionError] = {}
        for token in tokens:
            try:
                outcomes[token] = self._join(token)
            except SessionError as e:
                outcomes[token] = e
        return outcomes

    async def poll(self) -> PollResult:
        if not self.reachable:
            raise CommunityUnreachable("cannot reach the server")
        updates = {}
        for token in self.joined:
            items = tuple(post(token, n) for n in self.rooms[token] if n > self.cursors[token])
            seqno = max([self.cursors[token], *(i.seqno for i in items)])
            updates[token] = RoomUpdate(token, None, items, seqno)
        return PollResult(SERVER, updates)

    async def commit_room(self, token: str, seqno: int) -> None:
        self.cursors[token] = max(self.cursors[token], seqno)

    async def commit_boxes(self, inbox_id: int, outbox_id: int) -> None:
        return None


class Portals:
    def __init__(self) -> None:
        self.reads = 0

    @staticmethod
    def record(portal_id: int) -> PortalRecord:
        return PortalRecord(
            portal_id, PortalKind.COMMUNITY, "k", "!room", None, None, None, None,
            False, None, False, 0, None,
        )  # fmt: skip

    async def get_by_id(self, portal_id: int) -> PortalRecord:
        self.reads += 1
        return self.record(portal_id)

    async def get_many(self, portal_ids: list[int]) -> dict[int, PortalRecord]:
        self.reads += 1  # one query for them all
        return {i: self.record(i) for i in portal_ids}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))


def polling(
    handle: Callable[[PortalRecord, Item], Awaitable[None]],
    parked: list[Any],
    portals: Portals | None = None,
    locks: dict[int, asyncio.Lock] | None = None,
) -> ServerPolling:
    locks = {} if locks is None else locks

    async def on_info(*_: object) -> None:
        return None

    async def park(portal: PortalRecord, item: Item, error: BaseException, tries: int) -> None:
        parked.append((item.room, item.seqno, str(error), tries))

    return ServerPolling(
        portals=portals or Portals(),  # type: ignore[arg-type]
        handle_item=handle,
        portal_lock=lambda pid: locks.setdefault(pid, asyncio.Lock()),
        poll_interval=0.01,
        on_room_info=on_info,
        allow_downloads=lambda url: None,
        park=park,
        backfill=BackfillPolicy(-1),  # these rooms are read from since/0 (no backfill)
    )


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_a_poison_post_is_parked_and_every_room_goes_on() -> None:
    server = FakeServer({"lobby": [1, 2, 3], "dev": [1, 2]})
    seen: list[tuple[str, int]] = []
    parked: list[Any] = []

    async def handle(portal: PortalRecord, item: Item) -> None:
        if (item.room, item.seqno) == ("lobby", 2):
            raise ValueError("cannot convert")
        seen.append((item.room, item.seqno))

    link = ServerLink(server, pending={"lobby": 1, "dev": 2})  # type: ignore[arg-type]
    task = asyncio.create_task(polling(handle, parked).run(link))
    await wait_until(lambda: server.cursors == {"lobby": 3, "dev": 2})
    server.rooms["lobby"].append(4)  # later posts in the same room still arrive
    await wait_until(lambda: ("lobby", 4) in seen)
    await cancel_and_wait(task)
    # Each room in its order (the rooms of a poll are handled at once).
    assert [n for room, n in seen if room == "lobby"] == [1, 3, 4]
    assert [n for room, n in seen if room == "dev"] == [1, 2]
    assert parked == [("lobby", 2, "cannot convert", failures.PERMANENT_ATTEMPTS)]


async def test_a_transient_failure_holds_only_its_room_and_loses_nothing() -> None:
    server = FakeServer({"lobby": [1, 2, 3], "dev": [1, 2]})
    seen: list[tuple[str, int]] = []
    parked: list[Any] = []
    outage = {"left": 8}  # longer than any number of tries a permanent failure gets

    async def handle(portal: PortalRecord, item: Item) -> None:
        if (item.room, item.seqno) == ("lobby", 2) and outage["left"] > 0:
            outage["left"] -= 1
            raise MatrixConnectionError("homeserver down")
        seen.append((item.room, item.seqno))

    link = ServerLink(server, pending={"lobby": 1, "dev": 2})  # type: ignore[arg-type]
    run = polling(handle, parked)
    run.error_backoff = Backoff(0.001, 0.005)
    task = asyncio.create_task(run.run(link))
    await wait_until(lambda: server.cursors["dev"] == 2)
    await wait_until(lambda: server.cursors["lobby"] == 3)
    await cancel_and_wait(task)
    lobby = [n for room, n in seen if room == "lobby"]
    assert lobby[0] == 1 and lobby[-2:] == [2, 3]  # in order; 1 again is harmless (dedup)
    assert ("dev", 1) in seen and ("dev", 2) in seen and parked == []


async def test_rooms_of_a_server_down_at_startup_are_joined_once_it_answers() -> None:
    server = FakeServer({"lobby": [1]})
    server.reachable = False
    seen: list[tuple[str, int]] = []

    async def handle(portal: PortalRecord, item: Item) -> None:
        seen.append((item.room, item.seqno))

    link = ServerLink(server, pending={"lobby": 1})  # type: ignore[arg-type]
    run = polling(handle, [])
    run.error_backoff = Backoff(0.01, 0.02)
    task = asyncio.create_task(run.run(link))
    await asyncio.sleep(0.1)
    assert link.pending == {"lobby": 1} and link.join_failures >= 2 and seen == []
    server.reachable = True
    await wait_until(lambda: seen == [("lobby", 1)])
    assert link.portals == {"lobby": 1} and link.pending == {}
    await cancel_and_wait(task)


async def test_a_room_the_server_refuses_keeps_no_other_room_out() -> None:
    server = FakeServer({"gone": [1], "lobby": [1]})
    server.refused = {"gone"}
    seen: list[tuple[str, int]] = []

    async def handle(portal: PortalRecord, item: Item) -> None:
        seen.append((item.room, item.seqno))

    link = ServerLink(server, pending={"gone": 1, "lobby": 2})  # type: ignore[arg-type]
    task = asyncio.create_task(polling(handle, []).run(link))
    await wait_until(lambda: seen == [("lobby", 1)])
    assert link.pending == {"gone": 1}  # tried again later, with a backoff
    await cancel_and_wait(task)


async def test_resuming_many_rooms_costs_one_request_and_one_portal_read() -> None:
    """Startup with many rooms on a server: one join request for all of them and one read
    of their portals, not a request and a read per room (docs/architecture.md §3.4)."""
    rooms: dict[str, list[int]] = {f"r{i}": [] for i in range(200)}
    server, portals = FakeServer(rooms), Portals()

    async def handle(portal: PortalRecord, item: Item) -> None:
        raise AssertionError("no room has posts")

    link = ServerLink(server, pending={t: i for i, t in enumerate(rooms)})  # type: ignore[arg-type]
    task = asyncio.create_task(polling(handle, [], portals).run(link))
    await wait_until(lambda: link.pending == {} and len(link.portals) == len(rooms))
    await cancel_and_wait(task)
    assert server.join_requests == 1
    assert portals.reads == 1  # get_many, once


async def test_a_portal_s_matrix_side_waits_for_one_item_not_a_whole_batch() -> None:
    # The portal lock is taken per item (docs/architecture.md §4.3): a Matrix message of the
    # portal (the outbox, under the same lock) goes between two items of a long backlog.
    server = FakeServer({"lobby": list(range(1, 51))})
    seen: list[Any] = []
    locks: dict[int, asyncio.Lock] = {}
    outbox: list[asyncio.Task[None]] = []

    async def matrix_message() -> None:
        async with locks[1]:
            seen.append("matrix")

    async def handle(portal: PortalRecord, item: Item) -> None:
        if item.seqno == 1:
            outbox.append(asyncio.create_task(matrix_message()))
        await asyncio.sleep(0)
        seen.append(item.seqno)

    link = ServerLink(server, pending={"lobby": 1})  # type: ignore[arg-type]
    task = asyncio.create_task(polling(handle, [], locks=locks).run(link))
    await wait_until(lambda: server.cursors["lobby"] == 50)
    await cancel_and_wait(task)
    await asyncio.gather(*outbox)
    assert seen.index("matrix") == 1  # right after the item in hand, not after all 50
    assert [n for n in seen if n != "matrix"] == list(range(1, 51))
