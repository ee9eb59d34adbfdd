"""Community outbox payloads: typed, and the same JSON as rows already on disk."""

from __future__ import annotations

import json

import pytest

from bridge.core.community.payloads import (
    EditPayload,
    PostMedia,
    PostPayload,
    ReactPayload,
    RedactPayload,
)
from bridge.core.portal.payloads import BadPayload
from bridge.session.messages import Quote

MEDIA = {"mxc": "mxc://hs/f", "filename": "f.png", "mimetype": "image/png", "w": None,
         "h": None, "voice": False}  # fmt: skip


@pytest.mark.parametrize(
    "row",
    [
        {"text": "hi", "name": "Ann", "sender": "@a:hs"},
        {"text": "", "name": "Ann", "sender": "@a:hs", "media": MEDIA, "sent_at": 5},
        {
            "text": "re",
            "name": "Ann",
            "sender": "@a:hs",
            "media": {**MEDIA, "w": 3, "h": 4, "voice": True},
            "quote": {"timestamp": 9, "author": "15ab"},
            "sent_at": 6,
        },
    ],
)
def test_old_post_rows_read_back_and_write_the_same_bytes(row: dict[str, object]) -> None:
    text = json.dumps(row)
    assert PostPayload.from_json(text).to_json() == text


def test_posts_are_typed_and_keep_their_sent_timestamp() -> None:
    row = {
        "text": "re",
        "name": "Ann",
        "sender": "@a:hs",
        "media": {**MEDIA, "w": 3, "h": 4, "voice": True},
        "quote": {"timestamp": 9, "author": "15ab"},
    }
    post = PostPayload.from_json(json.dumps(row))
    assert post == PostPayload(
        "re", "Ann", "@a:hs", PostMedia("mxc://hs/f", "f.png", "image/png", 3, 4, True),
        Quote(9, "15ab"),
    )  # fmt: skip
    assert json.loads(post.with_sent_at(11).to_json()) == {**row, "sent_at": 11}


def test_relation_rows_keep_their_keys_and_order() -> None:
    edit = EditPayload("$t", "new", "Ann", "@a:hs")
    react = ReactPayload("$t", "👍", "@a:hs")
    redact = RedactPayload("$t", "@a:hs")
    assert edit.to_json() == json.dumps(
        {"target": "$t", "text": "new", "name": "Ann", "sender": "@a:hs"}
    )
    assert react.to_json() == json.dumps({"target": "$t", "emoji": "👍", "sender": "@a:hs"})
    assert redact.to_json() == json.dumps({"redacts": "$t", "sender": "@a:hs"})
    assert EditPayload.from_json(edit.to_json()) == edit
    assert ReactPayload.from_json(react.to_json()) == react
    assert RedactPayload.from_json(redact.to_json()) == redact


def test_unreadable_rows_say_why() -> None:
    with pytest.raises(BadPayload, match=r"payload\.media\.mxc is missing"):
        PostPayload.from_json(json.dumps({"text": "", "name": "A", "sender": "@a", "media": {}}))
    with pytest.raises(BadPayload, match=r"payload\.redacts is missing"):
        RedactPayload.from_json('{"sender": "@a:hs"}')
    with pytest.raises(BadPayload, match="not JSON"):
        ReactPayload.from_json("")
