"""Hostile transactions against the appservice endpoint and the real durable inbox (SQLite; and
PostgreSQL in the integration set): each is answered so that the homeserver moves on (200 with
the bad parts dropped or cleaned, or 400 for what is no transaction), never 500; the good
events next to the bad ones are kept.
Before bridge/matrix/transactions.py each of these was answered 500 (which the homeserver
retries forever), or lost the good events with the bad."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.matrix.transactions import MAX_EVENT_DEPTH
from tests.matrix.endpoint import AUTH, TXN_PATH, Endpoint, database, endpoint, message


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def az(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Endpoint]:
    # PostgreSQL refuses NUL in text and lone surrogates that SQLite takes; both must pass.
    async with database(request.param, str(tmp_path)) as url, endpoint(url) as ep:
        yield ep


def txn(*events: Any, **extra: Any) -> str:
    return json.dumps({"events": list(events), **extra})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_non_object_events_are_dropped_each_with_one_line(
    az: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.matrix")
    good = message("$good")
    assert await az.put("1", txn(1, "x", None, [], good)) == 200
    assert await az.stored() == [good]
    dropped = [r for r in caplog.records if r.getMessage().startswith("Dropping event")]
    assert len(dropped) == 4
    assert "not a JSON object but int" in dropped[0].getMessage()


async def test_events_without_usable_ids_are_dropped(az: Endpoint) -> None:
    good = message("$good")
    bad = [
        {"type": "m.room.message", "room_id": "!r:x"},  # no event id
        dict(message("$a"), room_id=5),
        dict(message("$b"), room_id="!r\x00:x"),  # PostgreSQL cannot store NUL in text
        dict(message("$c"), room_id="!r\ud800:x"),  # nor a lone surrogate
        dict(message("$d"), type=""),
        dict(message("$e"), event_id="$" + "e" * 300),
        dict(message("$f"), event_id="$f\n[forged log line]"),
    ]
    body = json.dumps({"events": [*bad, good]})  # ensure_ascii: \u0000 and \ud800 escapes
    assert await az.put("2", body) == 200
    assert await az.stored() == [good]


async def test_body_nested_100k_deep_is_400(az: Endpoint) -> None:
    # json.loads raised RecursionError: 500, retried forever.
    assert await az.put("3", nested(100_000)) == 400
    assert await az.put("4", '{"events": [], "x": ' + nested(100_000)) == 400  # unterminated
    assert await az.stored() == []


async def test_an_event_nested_100k_deep_is_dropped_and_the_others_kept(az: Endpoint) -> None:
    good = message("$good")
    deep_event = '{"type": "m.room.message", "content": ' + nested(100_000) + "}"
    body = '{"events": [' + deep_event + ", " + json.dumps(good) + '], "x": '
    body += nested(100_000) + "}"
    assert await az.put("5", body) == 200
    assert await az.stored() == [good]


@pytest.mark.parametrize("depth", [MAX_EVENT_DEPTH + 1, 900])
async def test_an_event_nested_deeper_than_the_limit_is_dropped(az: Endpoint, depth: int) -> None:
    # Whether ~1,000 levels fit under Python's recursion limit depends on how deep the stack
    # already is: an event parsed on its own (or in a worker thread) could then break
    # json.dumps on the way to the database, or a recursive handler. A fixed limit far below
    # keeps every later step safe; MAX_EVENT_DEPTH + 1 is the first depth dropped.
    good = message("$good")
    deep = dict(message("$deep"), content={"v": json.loads(nested(depth - 2))})
    ok = dict(message("$ok"), content={"v": json.loads(nested(MAX_EVENT_DEPTH - 2))})
    assert await az.put("6", txn(deep, ok, good)) == 200
    assert await az.stored() == [ok, good]


async def test_lone_surrogates_are_replaced_not_answered_500(az: Endpoint) -> None:
    # The database could not encode them (UnicodeEncodeError): 500 forever.
    event = message("$s", body="broken \ud800 pair \udc00!")
    event["content"]["\udbff key"] = "x"
    body = json.dumps({"events": [event]})  # escapes them as \ud800
    assert "\\ud800" in body
    assert await az.put("7", body) == 200
    (stored,) = await az.stored()
    assert stored["content"]["body"] == "broken \ufffd pair \ufffd!"
    assert stored["content"]["\ufffd key"] == "x"


async def test_nul_is_removed_from_strings_and_keys(az: Endpoint) -> None:
    event = message("$n", body="a\x00b")
    event["content"]["k\x00"] = "v"
    raw_nul = json.dumps({"events": [message("$raw", body="PLACEHOLDER")]})
    raw_nul = raw_nul.replace("PLACEHOLDER", "c\x00d")  # a raw NUL: not strict JSON
    assert await az.put("8", json.dumps({"events": [event]})) == 200
    assert await az.put("9", raw_nul) == 200
    first, second = await az.stored()
    assert first["content"] == {"msgtype": "m.text", "body": "ab", "k": "v"}
    assert second["content"]["body"] == "cd"


async def test_valid_surrogate_pairs_and_odd_unicode_survive(az: Endpoint) -> None:
    body = "😀 \u202e rtl \u0301 \uffff \U0010ffff \u2028"
    assert await az.put("10", json.dumps({"events": [message("$u", body=body)]})) == 200
    assert (await az.stored())[0]["content"]["body"] == body


async def test_invalid_utf8_becomes_replacement_characters(az: Endpoint) -> None:
    raw = txn(message("$i", body="PLACEHOLDER")).encode()
    raw = raw.replace(b"PLACEHOLDER", b"x\xff\xed\xa0\x80y")  # junk, an encoded surrogate
    assert await az.put("11", raw) == 200
    assert (await az.stored())[0]["content"]["body"] == "x" + "\ufffd" * 4 + "y"


@pytest.mark.parametrize(
    "txn_id",
    ["a%00b", "a%0Ab", "a%1Bb", "a%C2%85b", "x" * 256],
    ids=["nul", "newline", "escape", "c1-control", "too-long"],
)
async def test_a_transaction_id_that_is_no_id_is_400(az: Endpoint, txn_id: str) -> None:
    # PostgreSQL cannot store NUL in text (500 forever), and an id of thousands of
    # characters overflows its index; the homeserver's ids are numbers.
    resp = await az.client.put(TXN_PATH.format(txn_id), data=txn(message("$t")), headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_INVALID_PARAM"
    assert await az.stored() == []
    assert await az.put("x" * 255, txn(message("$t"))) == 200  # the longest id allowed


async def test_junk_in_the_ephemeral_list_is_dropped(az: Endpoint) -> None:
    typing = {"type": "m.typing", "room_id": "!r:x", "content": {"user_ids": []}}
    body = txn(message("$e"), ephemeral=[1, "x", None, [], typing])
    assert await az.put("13", body) == 200
    assert az.ephemeral == [typing]
    assert await az.put("14", txn(ephemeral="not a list")) == 200


async def test_not_json_constants_and_huge_numbers(az: Endpoint) -> None:
    huge = '{"type": "m.room.message", "event_id": "$h", "room_id": "!r:x", "n": 1'
    huge += "0" * 5000 + "}"  # over Python's 4,300-digit limit: the whole body was 400
    body = '{"events": [' + huge + ", "
    body += '{"type": "t", "event_id": "$c", "room_id": "!r:x", "a": NaN, "b": -Infinity, '
    body += '"c": 1e99999}]}'
    assert await az.put("15", body) == 200
    assert await az.stored() == [
        {"type": "t", "event_id": "$c", "room_id": "!r:x"} | dict.fromkeys("abc")
    ]


async def test_not_a_transaction_is_400(az: Endpoint) -> None:
    for i, body in enumerate(["[]", '"x"', "null", "{", '{"events": 5}', "{}", "\ufeff{}"]):
        assert await az.put(f"16-{i}", body) == 400, body
    assert await az.put("17", b"\xff\xfe") == 400


async def test_a_valid_transaction_still_goes_through_after_the_junk(az: Endpoint) -> None:
    await test_body_nested_100k_deep_is_400(az)
    await az.put("18", txn(1, "x", None))
    good = message("$after")
    assert await az.put("19", txn(good)) == 200
    assert await az.stored() == [good]


async def test_integers_beyond_canonical_json_are_kept_exactly(az: Endpoint) -> None:
    # Canonical JSON stops at 2**53 - 1; a homeserver may still pass bigger ones on (older
    # room versions). They are stored as they came (no rounding through a float, no 500 from
    # a 64-bit column); one past Python's 4,300 digits costs only its own event.
    content = {"msgtype": "m.text", "body": "hi", "n": 2**53, "m": -(2**63) - 1}
    content["u64"], content["long"] = 2**64 + 1, int("9" * 4_000)
    big = dict(message("$big"), origin_server_ts=2**70, content=content)
    too_long = '{"type": "m.room.message", "room_id": "!r:x", "event_id": "$long", '
    too_long += '"content": {"n": ' + "9" * 5_000 + "}}"
    body = '{"events": [' + json.dumps(big) + ", " + too_long + "]}"
    assert await az.put("ints", body) == 200
    assert await az.stored() == [big]
