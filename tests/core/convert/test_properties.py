"""Properties of the converters over generated text and HTML (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.convert.links import find_links, is_allowed_link
from bridge.core.convert.matrix_to_text import (
    MatrixUserInfo,
    html_to_session_text,
    matrix_to_session_text,
)
from bridge.core.convert.mentions import (
    find_session_mentions,
    ghost_mxid,
    ghost_mxid_pattern,
    mentioned_session_ids,
)
from bridge.core.convert.text_to_matrix import MentionTarget, session_text_to_content
from tests.core.convert.htmlcheck import read_markup

DOMAIN = "example.org"
GHOSTS = ghost_mxid_pattern("session_{userid}", DOMAIN)
IDS = ["05" + c * 64 for c in "abcdef"] + ["15" + "1" * 64]
GHOST_IDS = IDS[:3] + IDS[6:]  # shown as their ghost
LINKED = {IDS[3]: "@dave:example.org"}  # a Matrix user who linked this Session account
# IDS[4] and IDS[5] resolve to nobody and stay "@<id>" text.


def resolve(session_id: str) -> MentionTarget | None:
    if session_id in GHOST_IDS:
        return MentionTarget(ghost_mxid("session_{userid}", DOMAIN, session_id), "Ghost & <Co>")
    if session_id in LINKED:
        return MentionTarget(LINKED[session_id], "Dave")
    return None


def lookup(mxid: str) -> MatrixUserInfo | None:
    linked = {mxid: session_id for session_id, mxid in LINKED.items()}
    return MatrixUserInfo("Dave", linked[mxid]) if mxid in linked else None


mentions = st.sampled_from(IDS).map(lambda session_id: "@" + session_id)
links = st.sampled_from(
    ["https://example.org/a?b=1&c=<2>", "http://x.y/(z)", "mailto:a@b.c", "matrix:r/a:b"]
)
fragments = st.one_of(st.text(), mentions, links, st.sampled_from(["> ", "\n", ">", "\r\n"]))
any_text = st.lists(fragments, max_size=12).map("".join)


def visible_of_body(body: str) -> str:
    """What the HTML shows for ``body``: the leading ``> `` quote markers are markup there."""
    lines = body.split("\n")
    quoted = 0
    for i, line in enumerate(lines):
        if line == ">" or line.startswith("> "):
            lines[i] = line[2:]
            quoted += 1
        else:
            break
    if quoted and lines[quoted:] == [""]:  # nothing after the quote but its line break
        lines.pop()
    return "\n".join(lines)


@given(any_text)
def test_formatted_body_is_safe_html_showing_the_body(text: str) -> None:
    content = session_text_to_content(text, resolve)
    assert set(content) <= {"msgtype", "body", "format", "formatted_body", "m.mentions"}
    if "formatted_body" not in content:
        assert content["body"] == text.replace("\r\n", "\n").replace("\r", "\n")
        return
    markup = read_markup(content["formatted_body"])
    assert markup.text == visible_of_body(content["body"])
    for tag, attrs in markup.tags:
        assert tag in ("a", "br", "blockquote")
        if tag == "a":
            assert list(attrs) == ["href"]
            assert is_allowed_link(attrs["href"] or "")
        else:
            assert attrs == {}


@given(any_text)
def test_m_mentions_lists_exactly_the_resolved_users(text: str) -> None:
    content = session_text_to_content(text, resolve)
    # A mention inside a link is part of the link (https://host/@05…).
    in_links = [(link.start, link.end) for link in find_links(text)]
    outside = [
        span.session_id
        for span in find_session_mentions(text)
        if not any(start <= span.start < end for start, end in in_links)
    ]
    targets = [resolve(session_id) for session_id in dict.fromkeys(outside)]
    expected = list(dict.fromkeys(t.mxid for t in targets if t is not None))
    assert content["m.mentions"] == ({"user_ids": expected} if expected else {})


words = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters=">"),
    min_size=1,
    max_size=8,
)
tokens = st.one_of(words, words, mentions, links)
lines = st.lists(tokens, min_size=1, max_size=6).map(" ".join)
quote_lines = st.lists(st.one_of(lines.map(lambda line: "> " + line), st.just(">")), max_size=3)


@st.composite
def session_texts(draw: st.DrawFn) -> str:
    quoted = draw(quote_lines)
    while quoted and quoted[-1] == ">":  # an empty last quote line shows nothing, is not kept
        quoted.pop()
    body = draw(st.lists(st.one_of(lines, st.just("")), min_size=1, max_size=4))
    while body and not body[-1]:
        body.pop()
    text = "\n".join(quoted + body)
    return text if text.strip() and not text.startswith("\n") else "x"


@given(session_texts())
def test_round_trip_keeps_text_and_mentions(text: str) -> None:
    content = session_text_to_content(text, resolve)
    back = matrix_to_session_text(content, ghost_pattern=GHOSTS, lookup_user=lookup)
    assert back.text == text
    assert list(back.mentions) == mentioned_session_ids(text)
    assert not back.truncated


TAG_NAMES = "b i em strong del code pre p br hr blockquote ul ol li a span font h1 h6 img table"
tags = st.sampled_from([*TAG_NAMES.split(), "tr", "td", "mx-reply", "script", "div", "x-unknown"])
attrs = st.sampled_from(
    [
        "",
        ' href="https://matrix.to/#/@session_' + IDS[0] + ':example.org"',
        ' href="https://matrix.to/#/@dave:example.org"',
        ' href="https://matrix.to/#/%23room:example.org"',
        ' href="https://matrix.to/#/"',
        ' href="matrix:u/"',
        ' href="javascript:alert(1)"',
        ' href="https://x.org"',
        ' start="-5"',
        ' start="99999999999999999999"',
        ' data-mx-spoiler="r"',
        ' alt="\x00\x01"',
    ]
)
pieces = st.one_of(
    st.text(),
    st.builds("<{}{}>".format, tags, attrs),
    st.builds("</{}>".format, tags),
    st.sampled_from(["<", ">", "&", "&#0;", "&#x1;", "<!--", "<![CDATA[", "\x00", "\x01"]),
)
html_soup = st.lists(pieces, max_size=40).map("".join)
json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), html_soup)


@st.composite
def contents(draw: st.DrawFn) -> dict[str, Any]:
    content: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "msgtype": st.sampled_from(["m.text", "m.emote", "m.notice", "x"]) | json_values,
                "body": json_values,
                "format": st.just("org.matrix.custom.html") | json_values,
                "formatted_body": html_soup | json_values,
                "m.relates_to": st.sampled_from(
                    [{"m.in_reply_to": {"event_id": "$x"}}, {"rel_type": "m.replace"}, [], "x"]
                ),
                "m.new_content": st.deferred(lambda: contents()) | json_values,
            },
        )
    )
    return content


@settings(max_examples=300)
@given(contents(), st.integers(min_value=-5, max_value=300), st.text(max_size=20))
def test_matrix_to_text_never_raises_and_respects_the_cap(
    content: dict[str, Any], max_length: int, sender: str
) -> None:
    result = matrix_to_session_text(
        content,
        ghost_pattern=GHOSTS,
        lookup_user=lookup,
        sender_name=sender,
        max_length=max_length,
    )
    assert len(result.text) <= max(1, max_length)
    assert list(result.mentions) == mentioned_session_ids(result.text)


@given(html_soup)
def test_html_conversion_never_leaks_its_block_markers(markup: str) -> None:
    text = html_to_session_text(markup, GHOSTS, lookup)
    assert "\x00" not in text
    assert "\x01" not in text
    assert text == text.strip(" \n")
