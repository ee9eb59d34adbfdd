from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ids import (
    BlindedID,
    GroupID,
    InvalidId,
    InvalidIdLength,
    InvalidIdPrefix,
    NotHexId,
    SessionID,
    UnblindedSogsID,
    parse_any_id,
    parse_blinded_id,
    parse_group_id,
    parse_session_id,
    parse_unblinded_sogs_id,
)

KEY_HEX = "ca03b8e369aeeb69fd260c2957d37b232db17a60db7a39bca9f0c0a6be135c1a"

KINDS = [
    (SessionID, parse_session_id, "05"),
    (BlindedID, parse_blinded_id, "15"),
    (BlindedID, parse_blinded_id, "25"),
    (GroupID, parse_group_id, "03"),
    (UnblindedSogsID, parse_unblinded_sogs_id, "00"),
]


@pytest.mark.parametrize(("kind", "parse", "prefix"), KINDS)
def test_parse_canonicalises_to_lowercase(kind: Any, parse: Any, prefix: str) -> None:
    assert callable(parse)
    parsed = parse(f"  {prefix}{KEY_HEX.upper()}\n")
    assert isinstance(parsed, kind)
    assert parsed.value == prefix + KEY_HEX
    assert str(parsed) == prefix + KEY_HEX
    assert parsed.prefix == prefix
    assert parsed.key == bytes.fromhex(KEY_HEX)
    assert parsed.raw == bytes.fromhex(prefix + KEY_HEX)
    assert parsed == kind(prefix + KEY_HEX)
    assert hash(parsed) == hash(kind(prefix + KEY_HEX))


@pytest.mark.parametrize(("kind", "parse", "prefix"), KINDS)
def test_from_key_round_trips(kind: Any, parse: Any, prefix: str) -> None:
    built = kind.from_key(bytes.fromhex(KEY_HEX), prefix)
    assert built.value == prefix + KEY_HEX
    assert kind.from_key(built.key, built.prefix) == built


def test_constructor_canonicalises_too() -> None:
    assert SessionID("05" + KEY_HEX.upper()) == SessionID("05" + KEY_HEX)


def test_ids_are_frozen() -> None:
    session_id = SessionID("05" + KEY_HEX)
    with pytest.raises(dataclasses.FrozenInstanceError):
        session_id.value = "05" + "00" * 32  # type: ignore[misc]


def test_different_kinds_never_compare_equal() -> None:
    assert cast(object, SessionID("05" + KEY_HEX)) != BlindedID("15" + KEY_HEX)
    assert BlindedID("15" + KEY_HEX) != BlindedID("25" + KEY_HEX)


def test_blind_version() -> None:
    assert BlindedID("15" + KEY_HEX).is_blind15
    assert not BlindedID("25" + KEY_HEX).is_blind15


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("05" + KEY_HEX[:-2] + "zz", NotHexId),
        ("05" + KEY_HEX[:-1] + "\u0660", NotHexId),  # an Arabic-Indic digit is not hex
        ("0x" + KEY_HEX, NotHexId),
        ("05" + KEY_HEX[:-2], InvalidIdLength),
        ("05" + KEY_HEX + "00", InvalidIdLength),
        ("", InvalidIdLength),
        ("15" + KEY_HEX, InvalidIdPrefix),
        ("03" + KEY_HEX, InvalidIdPrefix),
        ("ff" + KEY_HEX, InvalidIdPrefix),
    ],
)
def test_session_id_errors_are_distinct(text: str, error: type[InvalidId]) -> None:
    with pytest.raises(error):
        parse_session_id(text)


def test_invalid_id_is_a_value_error_and_the_kinds_are_distinct() -> None:
    assert issubclass(InvalidId, ValueError)
    for error in (NotHexId, InvalidIdLength, InvalidIdPrefix):
        assert issubclass(error, InvalidId)
    assert len({NotHexId, InvalidIdLength, InvalidIdPrefix}) == 3


def test_non_string_input_is_an_invalid_id() -> None:
    with pytest.raises(InvalidId):
        parse_session_id(b"05" * 33)  # type: ignore[arg-type]
    with pytest.raises(InvalidId):
        parse_any_id(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidIdLength):
        SessionID.from_key(b"\x01" * 31)


@pytest.mark.parametrize(("kind", "parse", "prefix"), KINDS)
def test_parse_any_id_picks_the_kind_by_prefix(kind: Any, parse: Any, prefix: str) -> None:
    assert type(parse_any_id(prefix + KEY_HEX)) is kind


def test_parse_any_id_rejects_an_unknown_prefix() -> None:
    with pytest.raises(InvalidIdPrefix):
        parse_any_id("99" + KEY_HEX)


@given(st.binary(min_size=32, max_size=32), st.sampled_from(KINDS))
def test_round_trip_through_text(key: bytes, kind_row: tuple[Any, Any, str]) -> None:
    kind, parse, prefix = kind_row
    built = kind.from_key(key, prefix)
    assert callable(parse)
    assert parse(built.value.upper()) == built
    assert parse_any_id(str(built)) == built


@given(st.text(max_size=80))
def test_random_text_is_parsed_or_rejected_with_invalid_id(text: str) -> None:
    for parse in (parse_session_id, parse_blinded_id, parse_group_id, parse_any_id):
        try:
            parsed = parse(text)
        except InvalidId:
            continue
        assert parsed.value == text.strip().lower()


@given(st.integers(min_value=0, max_value=65))
def test_truncated_ids_are_rejected(length: int) -> None:
    with pytest.raises(InvalidId):
        parse_session_id(("05" + KEY_HEX)[:length])
