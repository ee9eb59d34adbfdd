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
from bridge.core.community.polling import Item, ServerLink, ServerPolling
from bridge.core.portal import failures
from bridge.db.records import PortalKind, PortalRecord
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

    async def join(self, token: str) -> RoomInfo:
        if not self.reachable:
            raise CommunityUnreachable("cannot reach the server")
        self.joined.append(token)
        return info(token)

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


class Portals:
    async def get_by_id(self, portal_id: int) -> PortalRecord:
        return PortalRecord(
            portal_id, PortalKind.COMMUNITY, "k", "!room", None, None, None, None,
            False, None, False, 0, None,
        )  # fmt: skip


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))


def polling(
    handle: Callable[[PortalRecord, Item], Awaitable[None]], parked: list[Any]
) -> ServerPolling:
    locks: dict[int, asyncio.Lock] = {}

    async def on_info(*_: object) -> None:
        return None

    async def park(portal: PortalRecord, item: Item, error: BaseException, tries: int) -> None:
        parked.append((item.room, item.seqno, str(error), tries))

    return ServerPolling(
        portals=Portals(),  # type: ignore[arg-type]
        handle_item=handle,
        portal_lock=lambda pid: locks.setdefault(pid, asyncio.Lock()),
        poll_interval=0.01,
        on_room_info=on_info,
        allow_downloads=lambda url: None,
        park=park,
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
    assert seen == [("lobby", 1), ("lobby", 3), ("dev", 1), ("dev", 2), ("lobby", 4)]
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
    real_join = server.join

    async def join(token: str) -> RoomInfo:
        if token == "gone":
            raise RoomNotFound("room 'gone' not found", status=404)
        return await real_join(token)

    server.join = join  # type: ignore[method-assign]
    seen: list[tuple[str, int]] = []

    async def handle(portal: PortalRecord, item: Item) -> None:
        seen.append((item.room, item.seqno))

    link = ServerLink(server, pending={"gone": 1, "lobby": 2})  # type: ignore[arg-type]
    task = asyncio.create_task(polling(handle, []).run(link))
    await wait_until(lambda: seen == [("lobby", 1)])
    assert link.pending == {"gone": 1}  # tried again later, with a backoff
    await cancel_and_wait(task)
