from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.commands.parse import CommandRejected, ParsedCommand, parse_command

P = "!session"


def test_prefix_required_outside_management_room() -> None:
    assert parse_command("help", P, in_management_room=False) is None
    assert parse_command("!session help", P, False) == ParsedCommand("help", (), "")


def test_prefix_optional_in_management_room() -> None:
    assert parse_command("help", P, True) == ParsedCommand("help", (), "")
    assert parse_command("!session help", P, True) == ParsedCommand("help", (), "")


def test_arguments_and_case() -> None:
    parsed = parse_command("!session PM  05abc  hello there", P, False)
    assert parsed == ParsedCommand("pm", ("05abc", "hello", "there"), "05abc  hello there")


def test_prefix_must_be_a_whole_word() -> None:
    assert parse_command("!sessionfoo help", P, False) is None


def test_bare_prefix_means_help() -> None:
    assert parse_command("!session", P, False) == ParsedCommand("help", (), "")


def test_multi_line_command_is_refused() -> None:
    with pytest.raises(CommandRejected, match="one line"):
        parse_command("!session ping\nhelp", P, False)


def test_control_characters_are_refused() -> None:
    with pytest.raises(CommandRejected, match="control characters"):
        parse_command("!session ping\x1b[31m", P, False)


def test_ordinary_chat_in_a_room_is_not_a_command() -> None:
    assert parse_command("hello everyone", P, False) is None


@given(st.text())
def test_any_text_parses_or_is_refused_cleanly(body: str) -> None:
    try:
        result = parse_command(body, P, True)
    except CommandRejected as e:
        assert str(e)
    else:
        assert result is not None
        assert result.name == result.name.lower()
