from __future__ import annotations

from typing import Any

import pytest

from bridge.core.convert.matrix_to_text import (
    MatrixUserInfo,
    SessionText,
    html_to_session_text,
    matrix_to_session_text,
    strip_unsafe,
    trim_plain_reply_fallback,
)
from bridge.core.convert.mentions import ghost_mxid_pattern

A = "05" + "a" * 64
B = "05" + "b" * 64
GHOSTS = ghost_mxid_pattern("session_{userid}", "example.org")
USERS = {
    "@bob:example.org": MatrixUserInfo("Bob", B),  # linked his Session account
    "@carol:example.org": MatrixUserInfo("Carol"),
}


def html(markup: str) -> str:
    return html_to_session_text(markup, GHOSTS, USERS.get)


def convert(content: dict[str, Any], **kwargs: Any) -> SessionText:
    return matrix_to_session_text(content, ghost_pattern=GHOSTS, lookup_user=USERS.get, **kwargs)


def pill(mxid: str, text: str) -> str:
    return f'<a href="https://matrix.to/#/{mxid}">{text}</a>'


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("plain", "plain"),
        ("a &amp; b &lt;c&gt;", "a & b <c>"),
        ("<b>bold</b> <strong>strong</strong>", "*bold* *strong*"),
        ("<i>it</i> <em>em</em>", "_it_ _em_"),
        ("<s>s</s> <del>d</del> <strike>k</strike>", "~s~ ~d~ ~k~"),
        ("x<b> spaced </b>!", "x *spaced* !"),
        ("<b></b>x", "x"),
        ("<u>under</u> <sup>2</sup>", "under 2"),
        ("<code>x = 1</code>", "`x = 1`"),
        ('<pre><code class="language-py">a\n  b\n</code></pre>', "```\na\n  b\n```"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<p>one</p>\n<p>two</p>\n", "one\n\ntwo"),
        ("a<br>b<br/>c<br />", "a\nb\nc"),
        ("a<br><br>b", "a\n\nb"),
        ("text\nwith\n  source newlines", "text with source newlines"),
        ("<h1>Title</h1>body", "*Title*\nbody"),
        ("<h3><i>Sub</i></h3>", "*_Sub_*"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n", "- one\n- two"),
        ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b"),
        ('<ol start="9"><li>a</li><li>b</li></ol>', "9. a\n10. b"),
        ('<ol start="x"><li>a</li></ol>', "1. a"),
        ("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>", "- a\n  - b\n- c"),
        ("<ol><li><p>para</p><p>two</p></li></ol>", "1. para\n\n   two"),
        ("<blockquote>quote</blockquote>reply", "> quote\nreply"),
        ("<blockquote><p>q1</p><p>q2</p></blockquote><p>r</p>", "> q1\n>\n> q2\n\nr"),
        ("<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n> > b"),
        ("<blockquote><br>a</blockquote>", ">\n> a"),
        ("<hr>after", "---\nafter"),
        ('<a href="https://example.org">site</a>', "site (https://example.org)"),
        ('<a href="https://example.org">https://example.org</a>', "https://example.org"),
        ('<a href="https://example.org/">example.org</a>', "https://example.org/"),
        ('<a href="mailto:a@b.org">a@b.org</a>', "a@b.org"),
        ('<a href="mailto:a@b.org">mail me</a>', "mail me (mailto:a@b.org)"),
        ('<a href="javascript:alert(1)">click</a>', "click"),
        ('<a href="/relative">rel</a>', "rel"),
        ('<a href="https://x.org"></a>', "https://x.org"),
        ("<a>no href</a>", "no href"),
        (pill(f"@session_{A}:example.org", "Alice (Session)"), f"@{A}"),
        (pill(f"@session_{A.upper()}:example.org", "Alice"), "@Alice"),  # not a ghost
        (pill("@bob:example.org", "Bob"), f"@{B}"),
        (pill("@carol:example.org", "C."), "@Carol"),
        (pill("@dave:example.org", "Dave"), "@Dave"),
        (pill("@dave:example.org", "@Dave"), "@Dave"),
        (pill("@dave:example.org", ""), "@dave:example.org"),
        ('<a href="https://matrix.to/#/%40bob%3Aexample.org">Bob</a>', f"@{B}"),
        ('<a href="matrix:u/session_' + A + ':example.org">x</a>', f"@{A}"),
        (f"@session_{A}:evil.org", f"@session_{A}:evil.org"),
        (
            '<a href="https://matrix.to/#/%23room:example.org">#room:example.org</a>',
            "#room:example.org",
        ),
        ('<a href="https://matrix.to/#/%23room:example.org"></a>', "#room:example.org"),
        (
            '<a href="https://matrix.to/#/!r:example.org/$ev?via=example.org">this</a>',
            "this (https://matrix.to/#/!r:example.org/$ev?via=example.org)",
        ),
        ('<img src="mxc://x/y" alt=":party:">', ":party:"),
        ('<img src="mxc://x/y">', ""),
        ('<span data-mx-spoiler="">secret</span>', "||secret||"),
        ('<font color="red">red</font>', "red"),
        (
            "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
            "a | b\n1 | 2",
        ),
        ("<mx-reply><blockquote>old</blockquote></mx-reply>new", "new"),
        ("<script>alert(1)</script><style>p{}</style>visible", "visible"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<details><summary>more</summary>hidden</details>", "more\nhidden"),
        ("<b>unclosed <i>tags", "*unclosed _tags_*"),
        ("<b>mis<i>nested</b> tags</i>", "*mis_nested_* tags"),
        ("</p></b>stray ends", "stray ends"),
        ("<", "<"),
        ("", ""),
    ],
)
def test_html_to_session_text(markup: str, text: str) -> None:
    assert html(markup) == text


@pytest.mark.parametrize(
    ("content", "text", "mentions"),
    [
        ({"msgtype": "m.text", "body": "plain <b>not html</b>"}, "plain <b>not html</b>", ()),
        (
            {"msgtype": "m.text", "body": "b", "format": "org.matrix.custom.html",
             "formatted_body": "<b>html</b>"},
            "*html*", (),
        ),
        (
            {"msgtype": "m.text", "body": "b", "format": "other", "formatted_body": "<b>x</b>"},
            "b", (),
        ),
        (
            {"msgtype": "m.text", "body": "fallback", "format": "org.matrix.custom.html",
             "formatted_body": "<img src='mxc://a/b'>"},
            "fallback", (),
        ),
        (
            {"msgtype": "m.text", "body": "Alice: hi", "format": "org.matrix.custom.html",
             "formatted_body": pill(f"@session_{A}:example.org", "Alice") + ": hi "
             + pill("@bob:example.org", "Bob")},
            f"@{A}: hi @{B}", (A, B),
        ),
        ({"msgtype": "m.text", "body": f"typed @{A}"}, f"typed @{A}", (A,)),
        ({"msgtype": "m.emote", "body": "waves"}, "* Eve waves", ()),
        ({"msgtype": "m.notice", "body": "note"}, "note", ()),
        ({"body": "no msgtype"}, "no msgtype", ()),
        ({"msgtype": "m.text", "body": 42}, "", ()),
        ({"msgtype": "m.text", "body": "x", "format": "org.matrix.custom.html",
          "formatted_body": ["not", "str"]}, "x", ()),
        ({}, "", ()),
        ({"msgtype": "m.text", "body": "a\r\nb\n"}, "a\nb", ()),
    ],
)  # fmt: skip
def test_content(content: dict[str, Any], text: str, mentions: tuple[str, ...]) -> None:
    result = convert(content, sender_name="Eve")
    assert result == SessionText(text, mentions, False)


def test_emote_without_sender_name() -> None:
    assert convert({"msgtype": "m.emote", "body": "waves"}).text == "* waves"


def test_plain_reply_fallback_is_trimmed_for_replies_only() -> None:
    body = "> <@bob:example.org> original\n> second line\n\nmy answer"
    reply = {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
    }
    assert convert(reply).text == "my answer"
    assert convert({"msgtype": "m.text", "body": body}).text == body


@pytest.mark.parametrize(
    ("body", "trimmed"),
    [
        ("> <@a:b> q\n\nanswer", "answer"),
        ("> * <@a:b> emote\n\nanswer", "answer"),
        ("> a user quote\n\nanswer", "> a user quote\n\nanswer"),  # not a fallback
        ("> <@a:b> only one line", "> <@a:b> only one line"),
    ],
)
def test_trim_plain_reply_fallback(body: str, trimmed: str) -> None:
    assert trim_plain_reply_fallback(body) == trimmed


def test_html_reply_fallback_is_dropped() -> None:
    content = {
        "msgtype": "m.text",
        "body": "> <@bob:example.org> old\n\nnew",
        "format": "org.matrix.custom.html",
        "formatted_body": '<mx-reply><blockquote><a href="https://matrix.to/#/@bob:example.org">'
        "Bob</a><br>old</blockquote></mx-reply><i>new</i>",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
    }
    assert convert(content) == SessionText("_new_", (), False)


def test_edit_converts_new_content() -> None:
    content = {
        "msgtype": "m.text",
        "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
    }
    assert convert(content).text == "fixed"
    content["m.new_content"] = "garbage"
    assert convert(content).text == "* fixed"


def test_truncation_flag_and_ellipsis() -> None:
    result = convert({"msgtype": "m.text", "body": "x" * 50}, max_length=10)
    assert result == SessionText("x" * 9 + "…", (), True)
    assert convert({"msgtype": "m.text", "body": "x" * 10}, max_length=10).truncated is False


def test_truncation_never_splits_a_mention() -> None:
    body = f"hi @{A} there"
    result = convert({"msgtype": "m.text", "body": body}, max_length=30)
    assert result.text == "hi…"
    assert result.mentions == ()
    assert result.truncated
    whole = convert({"msgtype": "m.text", "body": body}, max_length=3 + 67 + 1)
    assert whole.text == f"hi @{A}…"
    assert whole.mentions == (A,)


def test_huge_input_is_bounded() -> None:
    markup = "<b>x</b>" * 100_000
    result = convert(
        {
            "msgtype": "m.text",
            "body": "",
            "format": "org.matrix.custom.html",
            "formatted_body": markup,
        }
    )
    assert result.truncated
    assert len(result.text) <= 2000


def test_deep_nesting_does_not_recurse_without_bound() -> None:
    depth = 20_000
    markup = "<blockquote><b>" * depth + "deep" + "</b></blockquote>" * depth
    assert "deep" in html(markup)
    assert html("<ul><li>" * depth + "x").endswith("x")


# --- what never reaches Session (docs/architecture.md §5) -----------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b", "ab"),  # NUL
        ("ding\x07", "ding"),  # BEL
        ("a\x08\x0b\x0c\x0e\x1f\x7fz", "az"),  # other C0 controls and DEL
        ("a\x80\x85\x9bz", "az"),  # C1 controls (\x9b is a one-byte CSI)
        ("keep\ttabs\nand lines", "keep\ttabs\nand lines"),
        ("dos\r\nmac\rline", "dos\nmac\nline"),
        ("\x1b[31mred\x1b[0m", "red"),  # CSI (colour)
        ("\x1b[2J\x1b[1;1Hcleared", "cleared"),  # CSI (clear screen, cursor)
        ("\x1b]0;owned\x07title", "title"),  # OSC ended by BEL
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST
        ("\x1bcreset", "reset"),  # two-character escape (RIS)
        ("\x1b(Bascii", "ascii"),  # with an intermediate byte
        ("\x1b[", ""),  # cut short
        ("\u202eevil\u202c", "evil"),  # RLO ... PDF
        ("\u202a\u202b\u202c\u202d\u202eok", "ok"),  # every embedding and override
        ("\u2066\u2067\u2068iso\u2069", "iso"),  # isolates
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("émoji 👍🏽 and \u200d joiners, عربى", "émoji 👍🏽 and \u200d joiners, عربى"),
    ],
)
def test_strip_unsafe(raw: str, clean: str) -> None:
    assert strip_unsafe(raw) == clean


def test_unsafe_characters_never_reach_session_from_body_or_html() -> None:
    body = "a\x00b \x1b[31mred\x1b[0m \u202eevil\u202c ding\x07"
    assert convert({"msgtype": "m.text", "body": body}).text == "ab red evil ding"
    # Character references make the same characters (the HTML parser turns &#0; into U+FFFD
    # and drops a lone ESC, leaving its harmless "[31m").
    markup = "<b>a&#0;b</b> &#27;[31mred &#x202E;evil <i>ding&#7;</i> &#x1b;&#x5b;2J"
    content = {"msgtype": "m.text", "body": "x", "format": "org.matrix.custom.html"}
    text = convert({**content, "formatted_body": markup}).text
    assert text == "*a\ufffdb* [31mred evil _ding_ [2J"
    emote = convert({"msgtype": "m.emote", "body": "waves\x07"}, sender_name="Al\x1b[5mice")
    assert emote.text == "* Alice waves"


def test_a_message_of_nothing_but_controls_is_empty() -> None:
    assert convert({"msgtype": "m.text", "body": "\x00\x07\u202e\x1b[0m"}).text == ""
