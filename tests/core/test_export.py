"""The export archive (checked against docs/export.schema.json) and the HTML transcript
(parsed with html.parser: escaped, self-contained)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema

from bridge.core.export import EventText, build_archive, event_text, render_html
from bridge.db.records import MessageRecord, PortalKind, PortalRecord, ReactionRecord

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "export.schema.json").read_text()
)
SAM = "05" + "ab" * 32
EVIL = '<script>alert("x")</script> & <img src="http://evil.example/x.png">'


class Transcript(HTMLParser):
    """Collects what a browser would load or run, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action") or (value and "url(" in value):
                self.external.append((tag, value or ""))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def portal() -> PortalRecord:
    return PortalRecord(
        id=1,
        kind=PortalKind.COMMUNITY,
        session_key="http://open.example|lobby|ab",
        mxid="!room:hs",
        name="Lobby <b>",
        topic=None,
        avatar_mxc=None,
        avatar_hash=None,
        relay_enabled=False,
        relay_login_id=None,
        encrypted=False,
        created_at=0,
        unbridged_at=None,
    )


def message(
    id: int, mxid: str, *, sid: str | None, mx: str | None, edits: int = 0
) -> MessageRecord:
    return MessageRecord(id, 1, mxid, f"k{id}", 0, sid, mx, 1_700_000_000_000 + id, edits)


def archive() -> dict[str, Any]:
    messages = [
        message(1, "$a", sid=SAM, mx=None, edits=1),
        message(2, "$b", sid=None, mx="@alice:hs"),
        message(3, "$c", sid=SAM, mx=None),
        message(4, "$gone", sid=SAM, mx=None),
    ]
    reactions = [
        ReactionRecord(1, 1, "$r", 2, SAM, "👍"),
        ReactionRecord(2, 1, "$s", 1, "@alice:hs", "❤"),
    ]
    texts = {
        "$a": event_text({"msgtype": "m.text", "body": EVIL}),
        "$b": event_text({"msgtype": "m.text", "body": "hello\nworld"}),
        "$c": event_text(
            {"msgtype": "m.image", "body": "cat.png", "url": "mxc://hs/cat", "filename": "cat.png"}
        ),
    }
    return build_archive(
        portal(),
        messages,
        reactions,
        texts,
        owners={SAM: "@sam:hs"},
        names={SAM: "Sam & Co (Session)"},
        exported_at=1_700_000_100_000,
    )


def test_the_archive_follows_the_schema_and_resolves_authors() -> None:
    data = archive()
    jsonschema.validate(json.loads(json.dumps(data)), SCHEMA)
    authors = {a["key"]: a for a in data["authors"]}
    assert authors[SAM]["matrix_id"] == "@sam:hs" and authors[SAM]["on_matrix"]
    assert authors["@alice:hs"]["session_id"] is None
    first, second, image, gone = data["messages"]
    assert first["body"] == EVIL and first["edited"]
    assert first["reactions"] == [{"emoji": "❤", "author": "@alice:hs"}]
    assert second["reactions"] == [{"emoji": "👍", "author": SAM}]
    assert image["file"] == {"name": "cat.png", "mxc": "mxc://hs/cat"}
    assert gone["body"] is None and gone["type"] is None
    assert [m["timestamp"] for m in data["messages"]] == sorted(
        m["timestamp"] for m in data["messages"]
    )


def test_the_schema_refuses_a_broken_archive() -> None:
    data = archive()
    del data["messages"][0]["author"]
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as e:
        assert "author" in e.message
    else:
        raise AssertionError("a message without author passed the schema")


def test_the_transcript_is_escaped_and_self_contained() -> None:
    page = render_html(archive())
    parser = Transcript()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags and "img" not in parser.tags
    assert parser.external == []
    text = "".join(parser.text)
    assert EVIL in text  # shown as text, not markup
    assert "Sam & Co (Session) → @sam:hs" in text
    assert "hello\nworld" in text
    assert "File: cat.png" in text and "mxc://" not in page
    assert "(not readable any more)" in text
    assert parser.tags.count("div") >= 4 and "title" in parser.tags
    assert "Lobby <b>" in text


def test_event_text_of_a_file_and_of_odd_content() -> None:
    assert event_text({"msgtype": "m.file", "body": "a.pdf", "url": "mxc://x/y"}) == EventText(
        "m.file", "a.pdf", "a.pdf", "mxc://x/y"
    )
    assert event_text({"body": 5}) == EventText("", None)
