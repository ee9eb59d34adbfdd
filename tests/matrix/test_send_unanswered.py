"""A send that went out but got no answer (the homeserver stopped mid-request) is looked for in
the room before it is sent again: Synapse forgets an appservice's transaction ids when it
restarts (docs/matrix-side.md §1.8), so a plain resend would make a second event."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import ClientConnectorError, ServerDisconnectedError
from aiohttp.client_reqrep import ConnectionKey
from mautrix.errors import MatrixConnectionError
from mautrix.types import EventID, EventType

from bridge.matrix import send

GHOST = "@session_05ab:localhost"


class FakeIntent:
    """Stores what it is sent; the first ``cut`` sends store the event but raise ``error``."""

    def __init__(self, error: BaseException, cut: int = 1) -> None:
        self.mxid = GHOST
        self.api = self
        self.error, self.cut = error, cut
        self.events: list[dict[str, Any]] = []
        self.sends = 0

    async def send_message_event(
        self, room_id: str, event_type: EventType, content: Any, *, txn_id: str, timestamp: int
    ) -> EventID:
        self.sends += 1
        event = {"event_id": f"$e{len(self.events)}", "sender": GHOST, "type": str(event_type),
                 "origin_server_ts": timestamp, "content": dict(content)}  # fmt: skip
        refused = isinstance(self.error.__cause__, ClientConnectorError)
        if refused and self.sends <= self.cut:
            raise self.error  # nothing was stored
        self.events.append(event)
        if self.sends <= self.cut:
            raise self.error
        return EventID(event["event_id"])

    async def request(self, method: Any, path: Any, query_params: dict[str, str]) -> Any:
        """``/messages`` backwards, ``limit`` events a page, ``end`` the next page's token."""
        newest_first = list(reversed(self.events))
        start, limit = int(query_params.get("from", "0")), int(query_params["limit"])
        page = newest_first[start : start + limit]
        more = start + limit < len(newest_first)
        return {"chunk": page, **({"end": str(start + limit)} if more else {})}


def cut_off() -> MatrixConnectionError:
    error = MatrixConnectionError("Server disconnected")
    error.__cause__ = ServerDisconnectedError()
    return error


def refused() -> MatrixConnectionError:
    error = MatrixConnectionError("Cannot connect")
    error.__cause__ = ClientConnectorError(
        ConnectionKey("127.0.0.1", 1, False, True, None, None, None), OSError(111, "refused")
    )
    return error


async def deliver(intent: FakeIntent, txn_id: str) -> EventID:
    """Send until it works, as the callers' retries do."""
    while True:
        try:
            return await send.send_content(
                intent, "!room", {"msgtype": "m.text", "body": "hi"}, txn_id=txn_id,
                timestamp=1_700_000_000_123,
            )  # type: ignore[arg-type]  # fmt: skip
        except MatrixConnectionError:
            continue


@pytest.mark.parametrize("error", [cut_off(), TimeoutError()])
async def test_an_unanswered_send_that_arrived_is_not_sent_twice(error: BaseException) -> None:
    intent = FakeIntent(error)
    if isinstance(error, TimeoutError):
        with pytest.raises(TimeoutError):
            await send.send_content(
                intent, "!room", {"msgtype": "m.text", "body": "hi"}, txn_id="t1",
                timestamp=1_700_000_000_123,
            )  # type: ignore[arg-type]  # fmt: skip
        event_id = await deliver(intent, "t1")
    else:
        event_id = await deliver(intent, "t2")
    assert len(intent.events) == 1 and intent.sends == 1
    assert event_id == "$e0"


async def test_a_send_that_never_arrived_is_looked_for_and_sent_once() -> None:
    # A refused connection may hide a request that arrived (aiohttp resends a PUT on a new
    # connection when a kept-alive one closes under it), so it is looked for too.
    intent = FakeIntent(refused(), cut=2)
    event_id = await deliver(intent, "t3")
    assert intent.sends == 3 and len(intent.events) == 1 and event_id == "$e0"


async def test_an_unanswered_send_is_found_behind_many_newer_events() -> None:
    # A busy room: 250 events of others arrived after the unanswered send, before the retry.
    intent = FakeIntent(cut_off())
    with pytest.raises(MatrixConnectionError):
        await send.send_content(
            intent, "!room", {"msgtype": "m.text", "body": "hi"}, txn_id="t4",
            timestamp=1_700_000_000_123,
        )  # type: ignore[arg-type]  # fmt: skip
    now = int(time.time() * 1000)
    for n in range(250):
        intent.events.append({"event_id": f"$o{n}", "sender": "@alice:localhost",
                              "type": "m.room.message", "origin_server_ts": now,
                              "content": {"body": f"other {n}"}})  # fmt: skip
    event_id = await deliver(intent, "t4")
    assert intent.sends == 1 and event_id == "$e0"


async def test_the_look_stops_at_events_older_than_the_unanswered_send() -> None:
    # Only events stored long before the send: the look ends at the first page and sends.
    intent = FakeIntent(refused(), cut=1)
    old = int(time.time() * 1000) - 3_600_000
    for n in range(150):
        intent.events.append({"event_id": f"$o{n}", "sender": "@alice:localhost",
                              "type": "m.room.message", "origin_server_ts": old,
                              "content": {"body": f"other {n}"}})  # fmt: skip
    pages: list[dict[str, str]] = []
    request = intent.request

    async def counted(method: Any, path: Any, query_params: dict[str, str]) -> Any:
        pages.append(query_params)
        return await request(method, path, query_params)

    intent.request = counted  # type: ignore[method-assign]
    event_id = await deliver(intent, "t5")
    assert intent.sends == 2 and len(pages) == 1
    assert event_id == f"$e{len(intent.events) - 1}"
