"""160-byte message padding (docs/session-protocol.md §2.12), vector section ``padding``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session.padding import PADDING_BLOCK, pad_message, pad_message_legacy, unpad_message
from tests.vectors import load

VECTORS = load("session-protocol")["padding"]


def test_vector_block_size() -> None:
    assert VECTORS["block"] == PADDING_BLOCK


@pytest.mark.parametrize(("length", "total"), VECTORS["newest_libsession_total_len"].items())
def test_newest_libsession_lengths(length: str, total: int) -> None:
    data = b"\x01" * int(length)
    padded = pad_message(data)
    assert len(padded) == total
    assert padded == data + b"\x80" + bytes(total - int(length) - 1)
    assert unpad_message(padded) == data


@pytest.mark.parametrize(("length", "total"), VECTORS["old_desktop_total_len"].items())
def test_old_desktop_lengths_are_accepted(length: str, total: int) -> None:
    data = b"\x02" * int(length)
    padded = pad_message_legacy(data)
    assert len(padded) == total
    assert unpad_message(padded) == data


def test_unpadded_input_is_returned_unchanged() -> None:
    # A protobuf may end in a zero byte (e.g. a varint 0): it must survive unpadding.
    content = b"\x0a\x02hi\x68\x00"
    assert unpad_message(content) == content
    assert unpad_message(b"") == b""
    assert unpad_message(b"\x00\x00") == b"\x00\x00"


def test_only_one_terminator_is_removed() -> None:
    assert unpad_message(b"ab\x80\x80\x00\x00") == b"ab\x80"


@given(st.binary(max_size=700))
def test_pad_round_trips_and_fills_whole_blocks(data: bytes) -> None:
    padded = pad_message(data)
    assert len(padded) % PADDING_BLOCK == 0
    assert len(data) + 1 < len(padded) <= len(data) + 1 + PADDING_BLOCK
    assert unpad_message(padded) == data
    legacy = pad_message_legacy(data)
    assert (len(legacy) + 1) % PADDING_BLOCK == 0
    assert unpad_message(legacy) == data


@given(st.binary(max_size=400))
def test_unpad_never_raises(data: bytes) -> None:
    result = unpad_message(data)
    assert data.startswith(result)
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        assert result == data
