"""Direct-chat outbox payloads: typed, and the same JSON as rows already on disk."""

from __future__ import annotations

import json

import pytest

from bridge.core.direct.payloads import DirectPayload
from bridge.core.portal.ops import MediaOp, ReactionOp, RedactionOp, TextOp
from bridge.core.portal.payloads import BadPayload
from bridge.session.messages import Quote
from bridge.session.outgoing import OutgoingMessage

# Rows as the bridge wrote them before payloads were typed (json.dumps of these dicts).
OLD_ROWS = [
    {"op": "text", "text": "hi", "sender": "@a:hs"},
    {"op": "text", "text": "re", "quote": {"timestamp": 7, "author": "05aa"}, "sender": "@a:hs"},
    {
        "op": "media",
        "url": "mxc://hs/n",
        "filename": "n.txt",
        "mimetype": "text/plain",
        "caption": None,
        "voice": False,
        "sender": "@a:hs",
    },
    {
        "op": "media",
        "url": "mxc://hs/v",
        "filename": "v.ogg",
        "mimetype": "audio/ogg",
        "caption": "listen",
        "voice": True,
        "width": 1,
        "height": 2,
        "sender": "@a:hs",
    },
    {"op": "react", "target": "$t", "emoji": "👍", "sender": "@a:hs"},
    {"op": "redact", "target": "$t", "sender": "@a:hs"},
]


@pytest.mark.parametrize("row", OLD_ROWS, ids=lambda r: str(r["op"]))
def test_old_rows_read_back_and_write_the_same_bytes(row: dict[str, object]) -> None:
    text = json.dumps(row)
    assert DirectPayload.from_json(text).to_json() == text


def test_the_operations_are_typed() -> None:
    ops = [DirectPayload.from_json(json.dumps(row)).op for row in OLD_ROWS]
    assert ops == [
        TextOp("hi"),
        TextOp("re", Quote(7, "05aa")),
        MediaOp("mxc://hs/n", "n.txt", "text/plain"),
        MediaOp("mxc://hs/v", "v.ogg", "audio/ogg", "listen", True, 1, 2),
        ReactionOp("$t", "👍"),
        RedactionOp("$t"),
    ]


def test_the_kept_message_comes_last_and_reads_back() -> None:
    kept = OutgoingMessage("05bb", 1_700_000_000_000, 86_400_000, b"data", None, None)
    payload = DirectPayload(RedactionOp("$t"), "@a:hs").with_prepared(kept)
    text = payload.to_json()
    assert list(json.loads(text)) == ["op", "target", "sender", "prepared"]
    assert DirectPayload.from_json(text) == payload


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"op": "poke", "sender": "@a:hs"}, "unknown operation 'poke'"),
        ({"op": "text", "sender": "@a:hs"}, r"payload\.text is missing"),
        ({"op": "react", "target": "$t", "emoji": "x"}, r"payload\.sender is missing"),
        ({"op": "redact", "target": "$t", "sender": "@a", "prepared": 3}, "prepared"),
    ],
)
def test_unreadable_rows_say_why(row: dict[str, object], reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        DirectPayload.from_json(json.dumps(row))
