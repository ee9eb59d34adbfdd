from __future__ import annotations

import pytest

from bridge.core.convert.mentions import (
    MentionSpan,
    build_m_mentions,
    find_session_mentions,
    format_session_mention,
    ghost_mxid,
    ghost_mxid_pattern,
    mentioned_session_ids,
)

A = "05" + "a1" * 32
B = "15" + "b2" * 32
C = "25" + "c3" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"@{A}", [A]),
        (f"hi @{A}, and @{B}!", [A, B]),
        (f"@{C}", [C]),
        (f"@{A.upper()}", [A]),  # canonicalised to lowercase
        (f"(@{A})", [A]),
        (f"line\n@{A}\n", [A]),
        (f"@{A}@{B}", [A]),  # the second "@" is glued to hex: not a mention start
        ("@03" + "d4" * 32, []),  # group ids are not people
        ("@00" + "d4" * 32, []),
        (f"@{A}0", []),  # 67 hex: not an id
        (f"@{A[:-1]}", []),  # 65 hex
        (f"bob@{A}", []),  # glued to a word: an address, not a mention
        (f"@ {A}", []),
        (A, []),  # no "@"
        ("", []),
    ],
)
def test_find_session_mentions(text: str, expected: list[str]) -> None:
    assert [span.session_id for span in find_session_mentions(text)] == expected


def test_spans_point_at_the_token() -> None:
    text = f"x @{A} y"
    (span,) = find_session_mentions(text)
    assert span == MentionSpan(2, 2 + 67, A)
    assert text[span.start : span.end] == "@" + A


def test_mentioned_session_ids_are_distinct_in_order() -> None:
    assert mentioned_session_ids(f"@{B} @{A} @{B} @{A.upper()}") == [B, A]


def test_format_session_mention() -> None:
    assert format_session_mention(A.upper()) == "@" + A


@pytest.mark.parametrize(
    ("user_ids", "sender", "room", "expected"),
    [
        ([], None, False, {}),
        (["@a:x"], None, False, {"user_ids": ["@a:x"]}),
        (["@a:x", "@b:x", "@a:x"], None, False, {"user_ids": ["@a:x", "@b:x"]}),
        (["@a:x", "@me:x"], "@me:x", False, {"user_ids": ["@a:x"]}),
        (["@me:x"], "@me:x", False, {}),
        (["", "@a:x"], None, False, {"user_ids": ["@a:x"]}),
        ([], None, True, {"room": True}),
    ],
)
def test_build_m_mentions(
    user_ids: list[str], sender: str | None, room: bool, expected: dict[str, object]
) -> None:
    assert build_m_mentions(user_ids, sender_mxid=sender, room=room) == expected


def test_ghost_mxid_and_pattern_agree() -> None:
    mxid = ghost_mxid("session_{userid}", "example.org", A.upper())  # canonicalised
    assert mxid == f"@session_{A}:example.org"
    match = ghost_mxid_pattern("session_{userid}", "example.org").fullmatch(mxid)
    assert match is not None
    assert match.group("session_id") == A


@pytest.mark.parametrize(
    "mxid",
    [
        f"@session_{A}:example.org.evil",
        f"@session_{A}:exampleXorg",  # the domain's dot is literal
        f"@session_{A}x:example.org",
        "@session_03" + "d4" * 32 + ":example.org",
        f"@other_{A}:example.org",
        "@session_:example.org",
        f"@session_{A.upper()}:example.org",  # ghosts are made lowercase only
    ],
)
def test_ghost_pattern_rejects_lookalikes(mxid: str) -> None:
    assert ghost_mxid_pattern("session_{userid}", "example.org").fullmatch(mxid) is None


def test_ghost_pattern_with_suffix_template() -> None:
    pattern = ghost_mxid_pattern("s.{userid}.bridge", "hs.test")
    match = pattern.fullmatch(f"@s.{B}.bridge:hs.test")
    assert match is not None
    assert match.group("session_id") == B
