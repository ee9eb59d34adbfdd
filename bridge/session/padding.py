"""160-byte message padding of ``Content`` bytes before encryption (docs/session-protocol.md
§2.12).

Used for 1:1 messages and community posts/inbox; groups v2 are not padded this way (§4.3).
"""

from __future__ import annotations

PADDING_BLOCK = 160
_TERMINATOR = 0x80


def pad_message(data: bytes) -> bytes:
    """Pad ``data`` the way the newest libsession does (§2.12): ``0x80`` then zeros.

    The total is the smallest multiple of 160 strictly greater than ``len(data) + 1``, so
    lengths 0-158 give 160 and 159-318 give 320 (vector section ``padding``).
    """
    total = (len(data) + 1) // PADDING_BLOCK * PADDING_BLOCK + PADDING_BLOCK
    return data + b"\x80" + bytes(total - len(data) - 1)


def pad_message_legacy(data: bytes) -> bytes:
    """Pad ``data`` like desktop before 2025-10: total ``160*ceil((len+2)/160) - 1`` (§2.12).

    Only used to check that receiving accepts what older clients still send.
    """
    total = -(-(len(data) + 2) // PADDING_BLOCK) * PADDING_BLOCK - 1
    return data + b"\x80" + bytes(total - len(data) - 1)


def unpad_message(data: bytes) -> bytes:
    """Remove either padding variant; return unpadded input unchanged (§2.12).

    Strips trailing ``0x00`` bytes and then exactly one ``0x80``. If the last non-zero byte is
    not ``0x80`` the input was not padded, and it is returned as it is: trailing zeros may be
    part of the protobuf (a varint 0 at the end), so they must not be cut. Never raises.
    """
    data = bytes(data)
    end = len(data.rstrip(b"\x00"))
    if end == 0 or data[end - 1] != _TERMINATOR:
        return data
    return data[: end - 1]
