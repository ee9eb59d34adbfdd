"""Canonical bencoding (docs/groups-v2.md §1.2, §1.6; §10.2 risk #5 and #6)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session.errors import DecodeError, InvalidInput
from bridge.session.groups.bencode import (
    BencodeEncodeError,
    BencodeError,
    BValue,
    append_signature,
    decode,
    decode_dict,
    decode_items,
    encode,
    get_bytes,
    get_dict,
    get_int,
    get_list,
    signing_prefix,
    split_signature,
)
from tests.vectors import load

CASES = {case["name"]: case for case in load("groups-v2")["cases"]}
SERIAL = CASES["config_message_serialization"]
SIGNATURE = CASES["config_message_signature"]

bvalues: st.SearchStrategy[BValue] = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@pytest.mark.parametrize("name", ["seqno10_message", "seqno12_message", "seqno15_message"])
def test_upstream_messages_decode_and_reencode_identically(name: str) -> None:
    raw = bytes.fromhex(SERIAL[name])
    value = decode(raw)
    assert isinstance(value, dict)
    assert encode(value) == raw


def test_upstream_seqno10_structure() -> None:
    value = decode_dict(bytes.fromhex(SERIAL["seqno10_message"]))
    assert value[b"#"] == 10
    assert value[b"&"] == {
        b"bar": {b"": [42, b"a", b"b"], b"asdf": 123, b"xyz": b"abc"},
        b"foo": 123,
    }


def test_key_order_is_raw_bytes() -> None:
    # §1.2: "" first, uppercase before lowercase, binary keys by bytes.
    text_keys: dict[str, int] = {"n": 1, "R": 2, "": 3, "A": 4, "I": 7, "P": 8}
    binary_keys: dict[bytes, int] = {b"\xff": 5, b"\x05" * 2: 6}
    merged = {k.encode(): v for k, v in text_keys.items()} | binary_keys
    encoded = encode(merged)
    keys = [item.key for item in decode_items(encoded)]
    assert keys == [b"", b"\x05\x05", b"A", b"I", b"P", b"R", b"n", b"\xff"]


def test_str_and_bytes_encode_the_same() -> None:
    assert encode({"a": "xyz"}) == encode({b"a": b"xyz"}) == b"d1:a3:xyze"
    assert encode([1, -2, 0, "é"]) == b"li1ei-2ei0e2:\xc3\xa9e"


@pytest.mark.parametrize(
    "value",
    [True, 2**63, -(2**63) - 1, 1.5, None, {1: 2}, {"a": 1, b"a": 2}, object()],
)
def test_unencodable_values_raise_typed_error(value: object) -> None:
    with pytest.raises(BencodeEncodeError) as info:
        encode(value)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInput)


@pytest.mark.parametrize(
    "raw",
    [
        b"d1:b0:1:a0:e",  # unsorted keys
        b"d1:a0:1:a0:e",  # duplicate keys
        b"d1:B0:1:A0:e",  # uppercase after uppercase in the wrong order
        b"d1:a0:0:0:e",  # "" must come first
        b"i03e",  # leading zero
        b"i-0e",  # negative zero
        b"i-03e",
        b"ie",
        b"i-e",
        b"i1.5e",
        b"i+1e",
        b"i9223372036854775808e",  # beyond int64
        b"02:ab",  # length with leading zero
        b"-1:a",
        b"3:ab",  # truncated string
        b"l",
        b"d",
        b"di1ei2ee",  # integer key
        b"i1ei2e",  # trailing data
        b"lee",
        b"",
        b"x",
        b" i1e",
        b"l" * 200 + b"e" * 200,  # nesting beyond the limit
    ],
)
def test_non_canonical_or_malformed_input_is_rejected(raw: bytes) -> None:
    with pytest.raises(BencodeError) as info:
        decode(raw)
    assert isinstance(info.value, DecodeError)


def test_int64_extremes_round_trip() -> None:
    for number in (0, -1, 2**63 - 1, -(2**63)):
        assert decode(encode(number)) == number


def test_decode_items_gives_exact_spans() -> None:
    raw = bytes.fromhex(SIGNATURE["expected_signed_message"])
    items = decode_items(raw)
    assert [item.key for item in items] == [b"#", b"&", b"<", b"=", b"~"]
    for item in items:
        assert decode(raw[item.value_start : item.end]) == item.value
        assert raw[item.start : item.value_start] == encode(item.key)
    assert items[-1].end == len(raw) - 1


def test_split_signature_matches_upstream_signed_message() -> None:
    # §1.6 / §10.2 #6: the signed prefix is the unsigned encoding without its final "e".
    raw = bytes.fromhex(SIGNATURE["expected_signed_message"])
    unsigned = bytes.fromhex(SIGNATURE["unsigned_message"])
    parts = split_signature(raw)
    assert parts.prefix == unsigned[:-1] == signing_prefix(unsigned)
    assert parts.signature.hex() == SIGNATURE["expected_signature"]
    assert append_signature(unsigned, parts.signature) == raw
    assert (
        hashlib.blake2b(raw, digest_size=32).hexdigest()
        == (SIGNATURE["expected_signed_message_hash"])
    )


def test_split_signature_rejects_misplaced_or_bad_signature() -> None:
    sig = b"s" * 64
    with pytest.raises(BencodeError):
        split_signature(encode({"a": 1}))
    with pytest.raises(BencodeError):
        split_signature(encode({"~": sig, "\x7f": 1}))  # a key after "~"
    with pytest.raises(BencodeError):
        split_signature(encode({"~": b"short"}))
    with pytest.raises(BencodeEncodeError):
        append_signature(encode({"~": sig}), sig)
    with pytest.raises(BencodeEncodeError):
        append_signature(encode({"a": 1}), b"short")


def test_typed_accessors() -> None:
    d = decode_dict(encode({"a": 5, "b": b"xy", "l": [1], "e": {"x": b""}}))
    assert get_int(d, b"a") == 5
    assert get_int(d, b"missing", 7) == 7
    assert get_bytes(d, b"b", 2) == b"xy"
    assert get_list(d, b"l") == [1]
    assert get_dict(d, b"e") == {b"x": b""}
    for getter, key in ((get_int, b"b"), (get_bytes, b"a"), (get_list, b"a"), (get_dict, b"l")):
        with pytest.raises(BencodeError):
            getter(d, key)
    with pytest.raises(BencodeError):
        get_bytes(d, b"b", 3)


@given(bvalues)
def test_round_trip(value: BValue) -> None:
    encoded = encode(value)
    assert decode(encoded) == value
    assert encode(decode(encoded)) == encoded


@given(bvalues)
def test_every_truncation_is_a_typed_error(value: BValue) -> None:
    encoded = encode(value)
    for cut in range(len(encoded)):
        with pytest.raises(BencodeError):
            decode(encoded[:cut])


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_typed_errors(raw: bytes) -> None:
    with contextlib.suppress(BencodeError):
        decode(raw)
    with contextlib.suppress(BencodeError):
        decode_items(raw)
        split_signature(raw)
