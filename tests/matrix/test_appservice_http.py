"""The appservice endpoint over real HTTP (aiohttp's test server), with a recording sink."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.txn_gaps import CONSECUTIVE_NEEDED

HS_TOKEN = "hs-token-for-tests"
TXN_PATH = "/_matrix/app/v1/transactions/{}"


class RecordingSink:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]] = []
        self.fail = False

    async def accept_transaction(
        self,
        txn_id: str,
        body_hash: str,
        events: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> bool:
        if self.fail:
            raise RuntimeError("database is down")
        fresh = all(t[0] != txn_id or t[1] != body_hash for t in self.accepted)
        self.accepted.append((txn_id, body_hash, events, ephemeral))
        return fresh


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def client(sink: RecordingSink) -> AsyncIterator[TestClient[Any, Any]]:
    az = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token=HS_TOKEN,
        bot_localpart="sessionbot",
        registration_id="session",
        sink=sink,
        max_body_size=8 * 1024 * 1024,
    )
    async with TestClient(TestServer(az.app)) as c:
        yield c


AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
EVENT = {
    "type": "m.room.message",
    "event_id": "$e",
    "room_id": "!r:x",
    "sender": "@u:x",
    "content": {"msgtype": "m.text", "body": "hi"},
    "origin_server_ts": 1,
}


async def test_missing_token_is_401_and_nothing_processed(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    resp = await client.put(TXN_PATH.format(1), json={"events": [EVENT]})
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_UNAUTHORIZED"
    assert sink.accepted == []


async def test_wrong_token_is_403_and_nothing_processed(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    resp = await client.put(
        TXN_PATH.format(1), json={"events": [EVENT]}, headers={"Authorization": "Bearer bad"}
    )
    assert resp.status == 403
    assert (await resp.json())["errcode"] == "M_FORBIDDEN"
    assert sink.accepted == []


async def test_query_token_alone_is_refused(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    resp = await client.put(TXN_PATH.format(1) + f"?access_token={HS_TOKEN}", json={"events": []})
    assert resp.status == 401
    assert sink.accepted == []


async def test_every_route_is_guarded(client: TestClient[Any, Any]) -> None:
    for method, path in [
        ("GET", "/_matrix/app/v1/users/@session_05ab:example.com"),
        ("GET", "/_matrix/app/v1/rooms/%23session_x:example.com"),
        ("POST", "/_matrix/app/v1/ping"),
    ]:
        resp = await client.request(method, path, json={})
        assert resp.status == 401, path


async def test_legacy_unprefixed_routes_do_not_exist(client: TestClient[Any, Any]) -> None:
    resp = await client.put("/transactions/1", json={"events": []}, headers=AUTH)
    assert resp.status == 404


async def test_transaction_is_handed_to_the_sink(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    edu = {"type": "m.typing", "room_id": "!r:x", "content": {"user_ids": []}}
    resp = await client.put(
        TXN_PATH.format(7), json={"events": [EVENT], "ephemeral": [edu]}, headers=AUTH
    )
    assert resp.status == 200
    assert await resp.json() == {}
    ((txn_id, body_hash, events, ephemeral),) = sink.accepted
    assert (txn_id, events, ephemeral) == ("7", [EVENT], [edu])
    assert len(body_hash) == 64


async def test_unstable_ephemeral_key_is_read(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    edu = {"type": "m.receipt", "room_id": "!r:x", "content": {}}
    body = {"events": [], "de.sorunome.msc2409.ephemeral": [edu]}
    assert (await client.put(TXN_PATH.format(8), json=body, headers=AUTH)).status == 200
    assert sink.accepted[0][3] == [edu]


async def test_sink_failure_answers_500_so_the_homeserver_retries(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    sink.fail = True
    resp = await client.put(TXN_PATH.format(9), json={"events": [EVENT]}, headers=AUTH)
    assert resp.status == 500


async def test_bad_json_and_missing_events(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    resp = await client.put(TXN_PATH.format(10), data=b"{nope", headers=AUTH)
    assert resp.status == 400
    resp = await client.put(TXN_PATH.format(11), json={"no": "events"}, headers=AUTH)
    assert resp.status == 400
    assert sink.accepted == []


async def test_bodies_over_one_mebibyte_are_accepted(
    client: TestClient[Any, Any], sink: RecordingSink
) -> None:
    big = dict(EVENT, content={"msgtype": "m.text", "body": "x" * 60_000})
    body = json.dumps({"events": [big] * 30})  # ~1.8 MB, over aiohttp's default 1 MiB
    assert len(body) > 1024 * 1024
    resp = await client.put(TXN_PATH.format(12), data=body, headers=AUTH)
    assert resp.status == 200
    assert len(sink.accepted[0][2]) == 30


async def test_probes_are_open(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/_matrix/mau/live")).status == 200
    assert (await client.get("/_matrix/mau/ready")).status == 500  # not ready until started


async def test_alias_queries_go_to_the_bound_hook(sink: RecordingSink) -> None:
    az = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token=HS_TOKEN,
        bot_localpart="sessionbot",
        registration_id="session",
        sink=sink,
    )
    asked: list[str] = []

    async def query(alias: str) -> bool:
        asked.append(alias)
        if alias == "#session_boom:example.com":
            raise RuntimeError("the database is down")
        return alias == "#session_lobby.host.12345678:example.com"

    path = "/_matrix/app/v1/rooms/{}"
    async with TestClient(TestServer(az.app)) as c:
        before = await c.get(
            path.format("%23session_lobby.host.12345678:example.com"), headers=AUTH
        )
        assert before.status == 404  # nothing bound yet: no such room
        az.bind_query_alias(query)
        found = await c.get(
            path.format("%23session_lobby.host.12345678:example.com"), headers=AUTH
        )
        assert found.status == 200 and await found.json() == {}
        missing = await c.get(path.format("%23session_nothing:example.com"), headers=AUTH)
        assert missing.status == 404 and (await missing.json())["errcode"] == "M_NOT_FOUND"
        failed = await c.get(path.format("%23session_boom:example.com"), headers=AUTH)
        assert failed.status == 500
    assert asked[0] == "#session_lobby.host.12345678:example.com"


async def test_access_log_lines_are_debug(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # They were INFO: 70% of a bridge's log, one line per transaction the homeserver pushes.
    def access_levels() -> list[str]:
        return [r.levelname for r in caplog.records if r.name == "aiohttp.access"]

    caplog.set_level(logging.INFO)
    for _ in range(2):  # the first request is logged before the second is served
        assert (await client.get("/_matrix/mau/live")).status == 200
    assert access_levels() == []
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        assert (await client.get("/_matrix/mau/live")).status == 200
    assert access_levels()[:1] == ["DEBUG"]
    assert "GET /_matrix/mau/live" in caplog.text


async def test_a_transaction_after_a_gap_is_refused_once_so_the_missing_one_comes_first(
    client: TestClient[Any, Any], sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    # Synapse can leave a transaction stored and unsent (bridge/matrix/txn_gaps.py); refusing
    # the next one makes its recovery send the stored ones in order.
    def event(n: int) -> dict[str, Any]:
        return {**EVENT, "event_id": f"$e{n}"}

    receipt = {"type": "m.receipt", "room_id": "!r:x", "content": {}}
    for n in range(22 - CONSECUTIVE_NEEDED, 22):  # a run of ids one apart: a gap is believed
        body = {"events": [event(n)]}
        assert (await client.put(TXN_PATH.format(n), json=body, headers=AUTH)).status == 200
    gap = {"events": [event(23)], "ephemeral": [receipt]}
    with caplog.at_level(logging.WARNING, logger="bridge.matrix.appservice"):
        resp = await client.put(TXN_PATH.format(23), json=gap, headers=AUTH)
    assert resp.status == 503
    assert "Transaction 22 is missing" in (await resp.json())["error"]
    assert "Transaction 23 came without transaction 22" in caplog.text
    # Its receipt is not sent again by the homeserver: it was kept, without the events.
    refused = sink.accepted[CONSECUTIVE_NEEDED:]
    assert [(t, e, eph) for t, _, e, eph in refused] == [("23", [], [receipt])]
    recovered = [(22, {"events": [event(22)]}), (23, {"events": [event(23)]})]
    for n, body in recovered:
        assert (await client.put(TXN_PATH.format(n), json=body, headers=AUTH)).status == 200
    ids = [e["event_id"] for _, _, events, _ in sink.accepted for e in events]
    assert ids[-4:] == ["$e20", "$e21", "$e22", "$e23"]
