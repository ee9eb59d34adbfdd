"""The checked reader of outbox payloads: clear reasons for what cannot be read."""

from __future__ import annotations

import pytest

from bridge.core.portal.outbox import PermanentFailure
from bridge.core.portal.payloads import (
    BadPayload,
    JsonObject,
    payload_sender,
    quote_from_json,
    quote_to_json,
)
from bridge.session.messages import Quote


@pytest.mark.parametrize(
    ("text", "reason"),
    [("{", "not JSON"), ("[1]", "not a JSON object"), ('"x"', "not a JSON object")],
)
def test_what_is_no_json_object_is_refused(text: str, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        JsonObject.parse(text)


def test_a_bad_payload_is_a_permanent_failure_naming_the_key() -> None:
    with pytest.raises(PermanentFailure, match=r"payload\.text is missing"):
        JsonObject.parse("{}").text("text")


def test_types_are_checked() -> None:
    payload = JsonObject.parse('{"n": "1", "b": 1, "t": true, "o": []}')
    with pytest.raises(BadPayload, match=r"payload\.n is not an integer"):
        payload.integer("n")
    with pytest.raises(BadPayload, match=r"payload\.b is not true or false"):
        payload.flag("b")
    with pytest.raises(BadPayload, match=r"payload\.t is not an integer"):
        payload.integer("t")  # JSON true is no number
    with pytest.raises(BadPayload, match=r"payload\.o is not an object"):
        payload.optional_object("o")


def test_optional_values_may_be_missing_or_null() -> None:
    payload = JsonObject.parse('{"a": null}')
    assert payload.optional_text("a") is None and payload.optional_text("b") is None
    assert payload.optional_integer("a") is None and payload.optional_object("a") is None
    assert payload.flag("a") is False and payload.flag("b") is False
    with pytest.raises(BadPayload, match=r"payload\.a is not a string"):
        payload.text("a")


def test_nested_objects_name_their_path() -> None:
    payload = JsonObject.parse('{"quote": {"timestamp": 5}}')
    with pytest.raises(BadPayload, match=r"payload\.quote\.author is missing"):
        quote_from_json(payload)


def test_quotes_keep_whom_and_when() -> None:
    quote = Quote(timestamp=12, author="05ab")
    assert quote_to_json(quote) == {"timestamp": 12, "author": "05ab"}
    assert quote_from_json(JsonObject({"quote": quote_to_json(quote)})) == quote
    assert quote_from_json(JsonObject({})) is None


def test_the_sender_for_the_failure_notice() -> None:
    assert payload_sender('{"op": "text", "sender": "@a:hs"}') == "@a:hs"
    assert payload_sender('{"op": "text"}') == ""
    assert payload_sender("not json") == ""
