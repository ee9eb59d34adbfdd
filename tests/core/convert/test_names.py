from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.convert.names import (
    DISPLAYNAME_MAX_BYTES,
    clean_name,
    disambiguate,
    disambiguate_ghost_names,
    format_relay_message,
    ghost_displayname,
    name_key,
    relay_sender_name,
    render_template,
    short_id,
    truncate_utf8,
)

A = "05" + "ab12cd34" + "0" * 56
B = "05" + "ef56ab78" + "0" * 56


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Alice", "Alice"),
        ("  Alice \t Smith \n", "Alice Smith"),
        ("Ali\x00ce\x1b[31m", "Ali ce"),  # controls become spaces; escape sequences go whole
        ("\u202eecilA", "ecilA"),  # RLO bidi override
        ("A\u2066l\u2069i\u200bc\ufeffe", "Alice"),  # isolates, ZWSP, BOM
        ("Ali\U000e0041ce", "Alice"),  # tag characters (invisible text)
        ("\u3164", ""),  # Hangul filler: a "blank" name
        ("\u2800\u115f ", ""),
        ("a\u2028b\u2029c", "a b c"),
        ("\u200d", ""),  # a lone joiner is nothing
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # emoji ZWJ sequence kept
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",) * 2,  # ZWNJ needed by Persian
        ("Zoë", "Zoë"),
        ("", ""),
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


def test_name_key_sees_through_case_width_and_joiners() -> None:
    assert (
        name_key("Ali\u200dce") == name_key("alice") == name_key("\uff21\uff2c\uff29\uff23\uff25")
    )
    assert name_key("Alice") != name_key("Alicia")


def test_short_id_skips_the_prefix() -> None:
    assert short_id(A) == "ab12cd34"
    assert short_id(A.upper()) == "ab12cd34"


@pytest.mark.parametrize(
    ("name", "template", "expected"),
    [
        ("Alice", "{displayname} (Session)", "Alice (Session)"),
        ("Alice", "{displayname}", "Alice"),
        ("Alice", "{displayname} [{short_id}]", "Alice [ab12cd34]"),
        ("Alice", "{userid}", A),
        (None, "{displayname} (Session)", "ab12cd34 (Session)"),
        ("", "{displayname} (Session)", "ab12cd34 (Session)"),
        ("\u202e \u200b", "{displayname} (Session)", "ab12cd34 (Session)"),
        ("{userid}", "{displayname} (Session)", "{userid} (Session)"),  # never re-expanded
        ("Alice", "{displayname} {unknown}", "Alice {unknown}"),
        ("Al\nice", "{displayname}", "Al ice"),
        ("Alice", "", "ab12cd34"),
    ],
)
def test_ghost_displayname(name: str | None, template: str, expected: str) -> None:
    assert ghost_displayname(name, A, template) == expected


def test_long_ghost_name_is_cut_but_keeps_the_suffix() -> None:
    result = ghost_displayname("é" * 300, A, "{displayname} (Session)")
    assert len(result.encode()) <= DISPLAYNAME_MAX_BYTES
    assert result.endswith("… (Session)")


@given(st.text(), st.sampled_from(["{displayname} (Session)", "{displayname}", "x{userid}x"]))
def test_ghost_displayname_is_always_clean_and_bounded(name: str, template: str) -> None:
    result = ghost_displayname(name, A, template)
    assert result
    assert len(result.encode()) <= DISPLAYNAME_MAX_BYTES
    assert result == clean_name(result)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 10, "abcdefghij"),
        ("abcdefghijk", 10, "abcdefg…"),
        ("ééééé", 7, "éé…"),  # never half a character
        ("ab\u0301cdefgh", 6, "a…"),  # no dangling combining mark
        ("x", 0, ""),
    ],
)
def test_truncate_utf8(text: str, limit: int, expected: str) -> None:
    assert truncate_utf8(text, limit) == expected
    assert len(truncate_utf8(text, limit).encode()) <= limit


def test_render_template_is_single_pass() -> None:
    assert render_template("{a}-{b}", {"a": "{b}", "b": "B"}) == "{b}-B"
    assert render_template("{a} {", {"a": "x"}) == "x {"


def test_disambiguate_only_touches_shared_names() -> None:
    names = {A: "Alice", B: "alice", "05" + "9" * 64: "Bob"}
    result = disambiguate_ghost_names(names)
    assert result == {A: "Alice (ab12cd34)", B: "alice (ef56ab78)", "05" + "9" * 64: "Bob"}


def test_disambiguate_keeps_the_suffix_within_the_cap() -> None:
    result = disambiguate({1: "x" * 300, 2: "x" * 300}, lambda key: f"#{key}")
    assert all(len(name.encode()) <= DISPLAYNAME_MAX_BYTES for name in result.values())
    assert result[1].endswith("… (#1)")
    assert result[2].endswith("… (#2)")


@pytest.mark.parametrize(
    ("mxid", "name", "members", "expected"),
    [
        ("@alice:x", "Alice", {}, "Alice"),
        ("@alice:x", "Alice", {"@bob:x": "Bob"}, "Alice"),
        ("@alice:x", "Alice", {"@alice:x": "Alice"}, "Alice"),  # herself
        ("@alice:x", "Alice", {"@evil:y": "alice"}, "Alice (@alice:x)"),
        ("@alice:x", "Ali\u200bce", {"@evil:y": "Alice"}, "Alice (@alice:x)"),
        ("@alice:x", None, {}, "alice"),
        ("@alice:x", " \u202e ", {}, "alice"),
        ("@alice:x", "A\nB", {}, "A B"),
    ],
)
def test_relay_sender_name(
    mxid: str, name: str | None, members: dict[str, str | None], expected: str
) -> None:
    assert relay_sender_name(mxid, name, members) == expected


@pytest.mark.parametrize(
    ("template", "name", "message", "expected"),
    [
        ("{displayname}: {message}", "Alice", "hi", "Alice: hi"),
        ("<{displayname}> {message}", "Alice", "hi", "<Alice> hi"),
        ("{displayname}: {message}", "Alice", "{displayname}", "Alice: {displayname}"),
        ("{displayname}: {message}", "Al\nice: fake\nBob", "hi", "Al ice: fake Bob: hi"),
        ("{displayname}: {message}", "Alice", "line1\nline2", "Alice: line1\nline2"),
    ],
)
def test_format_relay_message(template: str, name: str, message: str, expected: str) -> None:
    assert format_relay_message(template, name, message) == expected
