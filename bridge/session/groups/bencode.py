"""Canonical bencoding as used by Session groups v2 (docs/groups-v2.md §1.2).

Public API:

* ``BValue`` — a decoded value: ``int | bytes | list[BValue] | dict[bytes, BValue]``.
* ``encode(value) -> bytes`` — canonical encoding; ``str`` is accepted and written as UTF-8,
  dict keys are sorted by raw bytes, ``bool`` and out-of-range ints are refused.
* ``decode(data) -> BValue`` — strict canonical decoding of one complete value.
* ``decode_dict(data) -> dict[bytes, BValue]`` — same, the value must be a dict.
* ``decode_items(data) -> tuple[RawItem, ...]`` — top-level dict items *with byte spans* into
  ``data``, so hashes and signatures are computed over the received bytes (§1.2, §1.6).
* ``split_signature(data, key=b"~") -> SignedParts`` — for a dict whose last key is ``key``
  with a 64-byte value: the signed prefix (everything before that key, without the final
  ``e``, §1.6) and the signature.
* ``append_signature(unsigned, signature, key=b"~") -> bytes`` — the writer's counterpart.
* ``signing_prefix(unsigned) -> bytes`` — an encoded dict without its final ``e``.
* ``get_int``, ``get_bytes``, ``get_list``, ``get_dict`` — typed accessors raising
  :class:`BencodeError`.

Errors: :class:`BencodeError` (a :class:`~bridge.session.errors.DecodeError`) for bad input
bytes, :class:`BencodeEncodeError` (an :class:`~bridge.session.errors.InvalidInput`) for values
that cannot be encoded. Nothing else is raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from bridge.session.errors import DecodeError, InvalidInput

BValue: TypeAlias = int | bytes | list["BValue"] | dict[bytes, "BValue"]
"""A decoded bencoded value. Byte strings are always ``bytes``."""

Encodable: TypeAlias = (
    int
    | bytes
    | str
    | Sequence["Encodable"]
    | Mapping[bytes, "Encodable"]
    | Mapping[str, "Encodable"]
)
"""What :func:`encode` accepts (``str`` is written as UTF-8)."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 64
SIGNATURE_SIZE = 64
# Longest length prefix we accept; 10 digits covers any message the network stores.
_MAX_LEN_DIGITS = 10


class BencodeError(DecodeError):
    """Bytes are not one canonical bencoded value (§1.2)."""


class BencodeEncodeError(InvalidInput):
    """A value cannot be bencoded (bool, float, non-int64 int, duplicate keys...)."""


@dataclass(frozen=True, slots=True)
class RawItem:
    """One top-level dict item and where it lies in the input.

    ``start`` is the offset of the key's length prefix, ``value_start``/``end`` delimit the
    encoded value (``data[value_start:end]`` is its exact received encoding).
    """

    key: bytes
    value: BValue
    start: int
    value_start: int
    end: int


@dataclass(frozen=True, slots=True)
class SignedParts:
    """A signed dict split per §1.6: ``prefix`` is what the signature covers."""

    prefix: bytes
    signature: bytes


# ---------------------------------------------------------------------------------- encoding


def encode(value: Encodable) -> bytes:
    """Encode ``value`` canonically (§1.2): keys sorted by raw bytes, ints without padding."""
    out = bytearray()
    _encode_into(out, value, 0)
    return bytes(out)


def _to_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _encode_into(out: bytearray, value: Encodable, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeEncodeError("value nested too deeply")
    if isinstance(value, bool):
        # §1.2: there are no booleans on the wire; flags are the int 1 or an absent key.
        raise BencodeEncodeError("bool is not bencodable; use 1 or omit the key")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise BencodeEncodeError("integer outside signed 64-bit range")
        out += b"i%de" % value
    elif isinstance(value, bytes | bytearray | memoryview | str):
        raw = _to_bytes(value) if isinstance(value, str) else bytes(value)
        out += b"%d:" % len(raw)
        out += raw
    elif isinstance(value, Mapping):
        _encode_dict(out, value, depth)
    elif isinstance(value, Sequence):
        out += b"l"
        for element in value:
            _encode_into(out, element, depth + 1)
        out += b"e"
    else:
        raise BencodeEncodeError(f"cannot bencode {type(value).__name__}")


def _encode_dict(
    out: bytearray, value: Mapping[bytes, Encodable] | Mapping[str, Encodable], depth: int
) -> None:
    items: dict[bytes, Encodable] = {}
    for key, element in value.items():
        if not isinstance(key, bytes | str):
            raise BencodeEncodeError("dict keys must be bytes or str")
        raw_key = _to_bytes(key)
        if raw_key in items:
            raise BencodeEncodeError(f"duplicate dict key {raw_key!r}")
        items[raw_key] = element
    out += b"d"
    for raw_key in sorted(items):  # §1.2: sorted by raw bytes ("" first, "A" < "a")
        out += b"%d:" % len(raw_key)
        out += raw_key
        _encode_into(out, items[raw_key], depth + 1)
    out += b"e"


# ---------------------------------------------------------------------------------- decoding


def decode(data: bytes) -> BValue:
    """Decode exactly one canonical value filling all of ``data``; raise :class:`BencodeError`."""
    data = bytes(data)
    value, end = _decode_at(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"trailing data after offset {end}")
    return value


def decode_dict(data: bytes) -> dict[bytes, BValue]:
    """Decode a canonical bencoded dict filling all of ``data``."""
    value = decode(data)
    if not isinstance(value, dict):
        raise BencodeError("expected a bencoded dict")
    return value


def decode_items(data: bytes) -> tuple[RawItem, ...]:
    """Decode a top-level dict and return its items in order with their byte spans."""
    data = bytes(data)
    if not data.startswith(b"d"):
        raise BencodeError("expected a bencoded dict")
    items: list[RawItem] = []
    pos = 1
    previous: bytes | None = None
    while True:
        if pos >= len(data):
            raise BencodeError("unterminated dict")
        if data[pos : pos + 1] == b"e":
            break
        start = pos
        key, pos = _decode_key(data, pos, previous)
        value, end = _decode_at(data, pos, 1)
        items.append(RawItem(key, value, start, pos, end))
        previous, pos = key, end
    if pos + 1 != len(data):
        raise BencodeError(f"trailing data after offset {pos + 1}")
    return tuple(items)


def _decode_at(data: bytes, pos: int, depth: int) -> tuple[BValue, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("value nested too deeply")
    if pos >= len(data):
        raise BencodeError("truncated value")
    lead = data[pos]
    if lead == 0x69:  # i
        return _decode_int(data, pos)
    if 0x30 <= lead <= 0x39:
        return _decode_bytes(data, pos)
    if lead == 0x6C:  # l
        return _decode_list(data, pos + 1, depth)
    if lead == 0x64:  # d
        return _decode_dict(data, pos + 1, depth)
    raise BencodeError(f"unexpected byte 0x{lead:02x} at offset {pos}")


def _decode_int(data: bytes, pos: int) -> tuple[int, int]:
    end = data.find(b"e", pos + 1, pos + 22)
    if end < 0:
        raise BencodeError(f"unterminated integer at offset {pos}")
    digits = data[pos + 1 : end]
    body = digits[1:] if digits.startswith(b"-") else digits
    if not body or not body.isdigit():
        raise BencodeError(f"malformed integer at offset {pos}")
    # Canonical form: no leading zeros, no "-0" (§1.2).
    if (body.startswith(b"0") and len(body) > 1) or digits == b"-0":
        raise BencodeError(f"non-canonical integer at offset {pos}")
    value = int(digits)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BencodeError(f"integer out of int64 range at offset {pos}")
    return value, end + 1


def _decode_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    colon = data.find(b":", pos, pos + _MAX_LEN_DIGITS + 1)
    if colon < 0:
        raise BencodeError(f"malformed string length at offset {pos}")
    digits = data[pos:colon]
    if not digits.isdigit() or (digits.startswith(b"0") and len(digits) > 1):
        raise BencodeError(f"non-canonical string length at offset {pos}")
    start = colon + 1
    end = start + int(digits)
    if end > len(data):
        raise BencodeError(f"truncated string at offset {pos}")
    return data[start:end], end


def _decode_list(data: bytes, pos: int, depth: int) -> tuple[list[BValue], int]:
    out: list[BValue] = []
    while True:
        if pos >= len(data):
            raise BencodeError("unterminated list")
        if data[pos] == 0x65:  # e
            return out, pos + 1
        value, pos = _decode_at(data, pos, depth + 1)
        out.append(value)


def _decode_key(data: bytes, pos: int, previous: bytes | None) -> tuple[bytes, int]:
    if not 0x30 <= data[pos] <= 0x39:
        raise BencodeError(f"dict key at offset {pos} is not a byte string")
    key, pos = _decode_bytes(data, pos)
    # §1.2: keys strictly ascending by raw bytes (this also rejects duplicates).
    if previous is not None and key <= previous:
        raise BencodeError(f"dict key {key!r} unsorted or duplicated")
    return key, pos


def _decode_dict(data: bytes, pos: int, depth: int) -> tuple[dict[bytes, BValue], int]:
    out: dict[bytes, BValue] = {}
    previous: bytes | None = None
    while True:
        if pos >= len(data):
            raise BencodeError("unterminated dict")
        if data[pos] == 0x65:  # e
            return out, pos + 1
        key, pos = _decode_key(data, pos, previous)
        out[key], pos = _decode_at(data, pos, depth + 1)
        previous = key


# ---------------------------------------------------------------------------------- signatures


def signing_prefix(unsigned: bytes) -> bytes:
    """Return an encoded dict without its final ``e``: what a §1.6 signature covers."""
    if len(unsigned) < 2 or not unsigned.startswith(b"d") or not unsigned.endswith(b"e"):
        raise BencodeEncodeError("not an encoded dict")
    return unsigned[:-1]


def append_signature(unsigned: bytes, signature: bytes, key: bytes = b"~") -> bytes:
    """Append ``key`` = ``signature`` as the last item of the encoded dict ``unsigned``.

    ``unsigned`` must not already contain a key sorting at or after ``key``; the result is then
    canonical (§1.6: ``prefix || 1:~64:<sig> || e``).
    """
    if len(signature) != SIGNATURE_SIZE:
        raise BencodeEncodeError("signature must be 64 bytes")
    items = decode_items(unsigned)
    if items and items[-1].key >= key:
        raise BencodeEncodeError(f"dict already has a key sorting at or after {key!r}")
    return signing_prefix(unsigned) + encode(key) + encode(signature) + b"e"


def split_signature(data: bytes, key: bytes = b"~") -> SignedParts:
    """Split a signed dict: ``key`` must be its last key and hold 64 bytes (§1.6).

    The prefix is sliced from the received bytes, never re-encoded.
    """
    items = decode_items(data)
    if not items or items[-1].key != key:
        raise BencodeError(f"signature key {key!r} missing or not the last key")
    last = items[-1]
    if not isinstance(last.value, bytes) or len(last.value) != SIGNATURE_SIZE:
        raise BencodeError("signature must be a 64-byte string")
    return SignedParts(prefix=bytes(data[: last.start]), signature=last.value)


# ---------------------------------------------------------------------------------- accessors


def get_int(d: Mapping[bytes, BValue], key: bytes, default: int | None = None) -> int:
    """Return ``d[key]`` as an int; ``default`` when absent (error when no default)."""
    value = d.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, int):
        raise BencodeError(f"key {key!r}: expected an integer")
    return value


def get_bytes(d: Mapping[bytes, BValue], key: bytes, size: int | None = None) -> bytes:
    """Return ``d[key]`` as bytes, optionally of exactly ``size`` bytes."""
    value = d.get(key)
    if not isinstance(value, bytes):
        raise BencodeError(f"key {key!r}: expected a byte string")
    if size is not None and len(value) != size:
        raise BencodeError(f"key {key!r}: expected {size} bytes, got {len(value)}")
    return value


def get_list(d: Mapping[bytes, BValue], key: bytes) -> list[BValue]:
    """Return ``d[key]`` as a list."""
    value = d.get(key)
    if not isinstance(value, list):
        raise BencodeError(f"key {key!r}: expected a list")
    return value


def get_dict(d: Mapping[bytes, BValue], key: bytes) -> dict[bytes, BValue]:
    """Return ``d[key]`` as a dict."""
    value = d.get(key)
    if not isinstance(value, dict):
        raise BencodeError(f"key {key!r}: expected a dict")
    return value
