"""Parsing and cleaning transaction bodies (bridge/matrix/transactions.py, json_salvage.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.matrix.json_salvage import Unreadable, salvage, value_end
from bridge.matrix.transactions import (
    MAX_EVENT_DEPTH,
    BadTransaction,
    parse_transaction,
    sanitise,
    txn_id_problem,
)

EVENT = {"type": "t", "room_id": "!r:x", "event_id": "$e"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.lists(json_values, max_size=5), json_values)
def test_salvage_reads_what_json_reads(events: list[Any], other: Any) -> None:
    text = json.dumps({"other": other, "events": events, "ephemeral": events})
    found = salvage(text)
    assert found.body == {"events": events, "ephemeral": events}
    assert found.unparsable == {"events": 0, "ephemeral": 0}


@given(json_values)
def test_value_end_finds_the_end_of_any_value(value: Any) -> None:
    text = json.dumps(value) + " , 1"
    assert value_end(text, 0) == len(json.dumps(value))


def test_salvage_counts_what_it_cannot_parse() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    text = f'{{"events": [{deep}, 1{"0" * 5000}, {json.dumps(EVENT)}, {{"a": tru}}]}}'
    found = salvage(text)
    assert found.body == {"events": [EVENT]}
    assert found.unparsable == {"events": 3}


@pytest.mark.parametrize(
    "text", ["", "[]", "{", '{"events": [1,]}', '{"events": [1]} x', '{"a" 1}', '{"events": [']
)
def test_salvage_refuses_a_broken_top_level(text: str) -> None:
    with pytest.raises(Unreadable):
        salvage(text)


def test_sanitise_is_iterative_and_stops_at_the_limit() -> None:
    value: dict[str, Any] = {}
    node = value
    for _ in range(100_000):  # far past the recursion limit: no RecursionError
        node["x"] = {}
        node = node["x"]
    assert not sanitise(value, clean=True)
    shallow: dict[str, Any] = {"a": [{"b\x00": "c\ud800\x00d"}]}
    assert sanitise(shallow, clean=True)
    assert shallow == {"a": [{"b": "c\ufffdd"}]}


def test_the_depth_limit_counts_the_event_itself() -> None:
    def at_depth(depth: int) -> dict[str, Any]:
        return dict(EVENT, v=json.loads("[" * (depth - 1) + "]" * (depth - 1)))

    assert sanitise(at_depth(MAX_EVENT_DEPTH), clean=False)
    assert not sanitise(at_depth(MAX_EVENT_DEPTH + 1), clean=False)


def test_parse_keeps_good_events_and_counts_the_rest() -> None:
    text = json.dumps({"events": [EVENT, 1, {"type": "t"}], "ephemeral": [1, {"type": "x"}]})
    txn = parse_transaction("1", text)
    assert (txn.events, txn.ephemeral) == ([EVENT], [{"type": "x"}])
    assert (txn.dropped_events, txn.dropped_ephemeral) == (2, 1)


def test_parse_reads_the_unstable_ephemeral_key() -> None:
    text = json.dumps({"events": [], "de.sorunome.msc2409.ephemeral": [{"type": "x"}]})
    assert parse_transaction("1", text).ephemeral == [{"type": "x"}]


@pytest.mark.parametrize("text", ["[]", "{}", '{"events": {}}', "nope", "[" * 10_000])
def test_parse_refuses_what_is_no_transaction(text: str) -> None:
    with pytest.raises(BadTransaction):
        parse_transaction("1", text)


def test_transaction_ids() -> None:
    assert txn_id_problem("12345") is None
    assert txn_id_problem("x" * 255) is None
    for bad in ["", "x" * 256, "a\x00", "a\n", "a\x7f", "a\x85", "a\ud800"]:
        assert txn_id_problem(bad) is not None, repr(bad)
