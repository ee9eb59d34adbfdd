from __future__ import annotations

from typing import Any

import pytest

from bridge.core.convert.text_to_matrix import (
    HTML_FORMAT,
    MentionTarget,
    as_edit,
    disappearing_notice,
    disappearing_notice_text,
    pill_html,
    session_text_to_content,
    with_reply,
)
from bridge.session.messages.model import ExpiryMode
from tests.core.convert.htmlcheck import read_markup

A = "05" + "a" * 64
B = "05" + "b" * 64
UNKNOWN = "05" + "c" * 64
GHOST_A = f"@session_{A}:example.org"
BOB = "@bob:example.org"
TARGETS = {A: MentionTarget(GHOST_A, "Alice (Session)"), B: MentionTarget(BOB, "Bob")}
SEND, READ, OFF = ExpiryMode.DELETE_AFTER_SEND, ExpiryMode.DELETE_AFTER_READ, ExpiryMode.OFF
PILL_A = f'<a href="https://matrix.to/#/{GHOST_A}">Alice (Session)</a>'
PILL_B = f'<a href="https://matrix.to/#/{BOB}">Bob</a>'


def convert(text: str, sender: str | None = None) -> dict[str, Any]:
    return session_text_to_content(text, TARGETS.get, sender_mxid=sender)


@pytest.mark.parametrize(
    ("text", "body", "html", "user_ids"),
    [
        ("hello", "hello", None, []),
        ("", "", None, []),
        ("a < b & c > d", "a < b & c > d", None, []),  # plain: no HTML at all
        ("line1\nline2", "line1\nline2", None, []),
        ("win\r\nmac\rend", "win\nmac\nend", None, []),
        (f"@{UNKNOWN} hi", f"@{UNKNOWN} hi", None, []),  # unresolved: left as text
        (f"hi @{A}", "hi Alice (Session)", f"hi {PILL_A}", [GHOST_A]),
        (f"@{A.upper()}!", "Alice (Session)!", f"{PILL_A}!", [GHOST_A]),
        (
            f"@{A} @{B} @{A}",
            "Alice (Session) Bob Alice (Session)",
            f"{PILL_A} {PILL_B} {PILL_A}",
            [GHOST_A, BOB],
        ),
        ("a<b\n@" + A, "a<b\nAlice (Session)", f"a&lt;b<br>{PILL_A}", [GHOST_A]),
        (
            "see https://example.org/a?b=1&c=2.",
            "see https://example.org/a?b=1&c=2.",
            'see <a href="https://example.org/a?b=1&amp;c=2">https://example.org/a?b=1&amp;c=2'
            "</a>.",
            [],
        ),
        (
            "mail mailto:a@b.org",
            "mail mailto:a@b.org",
            'mail <a href="mailto:a@b.org">mailto:a@b.org</a>',
            [],
        ),
        ("> quoted", "> quoted", "<blockquote>quoted</blockquote>", []),
        (
            "> q1\n>\n> q2\nreply",
            "> q1\n>\n> q2\nreply",
            "<blockquote>q1<br><br>q2</blockquote>reply",
            [],
        ),
        ("> q\n\nreply", "> q\n\nreply", "<blockquote>q</blockquote><br>reply", []),
        (
            f"> @{B} said\nok @{A}",
            "> Bob said\nok Alice (Session)",
            f"<blockquote>{PILL_B} said</blockquote>ok {PILL_A}",
            [BOB, GHOST_A],
        ),
        ("not > a quote", "not > a quote", None, []),
        (">not a quote", ">not a quote", None, []),
        ("x\n> later quote", "x\n> later quote", None, []),  # only a leading quote
    ],
)
def test_session_text(text: str, body: str, html: str | None, user_ids: list[str]) -> None:
    content = convert(text)
    assert content["msgtype"] == "m.text"
    assert content["body"] == body
    if html is None:
        assert "format" not in content
        assert "formatted_body" not in content
    else:
        assert content["format"] == HTML_FORMAT
        assert content["formatted_body"] == html
    assert content["m.mentions"] == ({"user_ids": user_ids} if user_ids else {})


def test_sender_is_never_mentioned() -> None:
    content = convert(f"me @{A} and @{B}", sender=GHOST_A)
    assert content["m.mentions"] == {"user_ids": [BOB]}
    assert PILL_A in content["formatted_body"]  # still shown as a pill


def test_blank_display_name_falls_back_to_short_id() -> None:
    content = session_text_to_content(f"@{A}", lambda _: MentionTarget(GHOST_A, "\u202e\n"))
    assert content["body"] == "aaaaaaaa"


def test_msgtype_can_be_notice() -> None:
    assert convert("hi")["msgtype"] == "m.text"
    assert session_text_to_content("hi", TARGETS.get, msgtype="m.notice")["msgtype"] == "m.notice"


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script> https://x.org",
        '<img src=x onerror="alert(1)"> https://x.org',
        "javascript:alert(1) https://x.org",
        'https://x.org/"><script>alert(1)</script>',
        "https://x.org/'onmouseover='alert(1)",
        "https://x.org/&quot;onmouseover=alert(1)",
        "<a href=javascript:alert(1)>click</a> https://x.org",
        "> <mx-reply>fake</mx-reply>\n&lt;b&gt; https://x.org",
        "https://x.org/<script>",
        "data:text/html;base64,PHNjcmlwdD4= https://x.org",
    ],
)
def test_session_markup_is_inert(text: str) -> None:
    content = convert(text)
    markup = read_markup(content["formatted_body"])
    for tag, attrs in markup.tags:
        assert tag in ("a", "br", "blockquote"), tag
        if tag == "a":
            assert list(attrs) == ["href"]
            assert (attrs["href"] or "").startswith(("https://x.org", "https://matrix.to/#/@"))
    assert "<script" not in content["formatted_body"]


def test_pill_html_escapes_name_and_encodes_mxid() -> None:
    pill = pill_html('@we"ird:ex.org', "<b>Eve</b>")
    assert pill == '<a href="https://matrix.to/#/@we%22ird:ex.org">&lt;b&gt;Eve&lt;/b&gt;</a>'


def test_reply_shape() -> None:
    reply = with_reply(convert(f"hi @{B}"), "$orig", replied_mxid=GHOST_A, sender_mxid=BOB)
    assert reply["m.relates_to"] == {"m.in_reply_to": {"event_id": "$orig"}}
    assert reply["m.mentions"] == {"user_ids": [GHOST_A]}  # Bob sends it: not himself
    assert reply["body"] == "hi Bob"
    assert "<mx-reply>" not in reply.get("formatted_body", "")


def test_reply_adds_replied_user_once_and_leaves_input_alone() -> None:
    content = convert(f"@{A}")
    reply = with_reply(content, "$e", replied_mxid=GHOST_A)
    assert reply["m.mentions"] == {"user_ids": [GHOST_A]}
    assert "m.relates_to" not in content
    assert with_reply(convert("x"), "$e")["m.mentions"] == {}


def test_edit_shape_follows_matrix_side_2_8() -> None:
    new = convert(f"fixed @{A} @{B}")
    edit = as_edit(new, "$orig", previous_user_ids=[GHOST_A])
    assert edit == {
        "msgtype": "m.text",
        "body": "* fixed Alice (Session) Bob",
        "format": HTML_FORMAT,
        "formatted_body": f"* fixed {PILL_A} {PILL_B}",
        "m.new_content": {
            "msgtype": "m.text",
            "body": "fixed Alice (Session) Bob",
            "format": HTML_FORMAT,
            "formatted_body": f"fixed {PILL_A} {PILL_B}",
            "m.mentions": {"user_ids": [GHOST_A, BOB]},
        },
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
        "m.mentions": {"user_ids": [BOB]},
    }


def test_edit_of_plain_text_and_of_a_reply() -> None:
    reply = with_reply(convert("new"), "$parent", replied_mxid=BOB)
    edit = as_edit(reply, "$orig", previous_user_ids=[BOB])
    assert edit["body"] == "* new"
    assert "formatted_body" not in edit
    assert "m.relates_to" not in edit["m.new_content"]  # no m.in_reply_to in an edit
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$orig"}
    assert edit["m.mentions"] == {}
    assert edit["m.new_content"]["m.mentions"] == {"user_ids": [BOB]}


def test_edit_of_a_file_caption_keeps_the_file_in_the_fallback() -> None:
    image = {
        "msgtype": "m.image",
        "body": "new caption",
        "filename": "dot.png",
        "url": "mxc://x/a",
        "info": {"mimetype": "image/png", "size": 3},
        "m.mentions": {},
    }
    edit = as_edit(image, "$orig")
    assert edit["m.new_content"] == image
    assert edit["body"] == "* new caption" and edit["msgtype"] == "m.image"
    assert (edit["url"], edit["filename"], edit["info"]) == ("mxc://x/a", "dot.png", image["info"])


@pytest.mark.parametrize(
    ("mode", "seconds", "actor", "text"),
    [
        (SEND, 86400, None, "Disappearing messages set to 1 day after sending"),
        (READ, 43200, None, "Disappearing messages set to 12 hours after reading"),
        (SEND, 300, None, "Disappearing messages set to 5 minutes after sending"),
        (SEND, 1209600, None, "Disappearing messages set to 2 weeks after sending"),
        (READ, 3600, None, "Disappearing messages set to 1 hour after reading"),
        (SEND, 30, None, "Disappearing messages set to 30 seconds after sending"),
        (OFF, 0, None, "Disappearing messages turned off"),
        (OFF, 86400, None, "Disappearing messages turned off"),
        (SEND, 0, None, "Disappearing messages turned off"),
        (SEND, 604800, "Alice", "Alice set disappearing messages to 1 week after sending"),
        (OFF, 0, "Al\u202eice", "Alice turned off disappearing messages"),
    ],
)  # fmt: skip
def test_disappearing_notice(mode: ExpiryMode, seconds: int, actor: str | None, text: str) -> None:
    assert disappearing_notice_text(mode, seconds, actor) == text
    assert disappearing_notice(mode, seconds, actor) == {
        "msgtype": "m.notice",
        "body": text,
        "m.mentions": {},
    }


def test_odd_timer_is_spelled_out_exactly() -> None:
    assert disappearing_notice_text(SEND, 90061) == (
        "Disappearing messages set to 1 day 1 hour 1 minute 1 second after sending"
    )
