"""Typed, validated identifiers shared by the whole bridge.

Every Session-side id is a one-byte prefix followed by a 32-byte key, written as 66 lowercase
hex characters (docs/session-protocol.md §1.3):

* :class:`SessionID` — ``05`` + X25519 public key (an account);
* :class:`BlindedID` — ``15`` (blind15) or ``25`` (blind25) community-blinded key (§1.5);
* :class:`GroupID` — ``03`` + Ed25519 public key of a groups-v2 group (§1.7);
* :class:`UnblindedSogsID` — ``00`` + raw Ed25519 key, only seen in ``X-SOGS-Pubkey`` (§5.2).

Ids are canonicalised to lowercase on construction, so two spellings of one id compare equal
and map to the same row or ghost. Construction validates; an invalid value raises a subclass
of :class:`InvalidId`. This module is a leaf: it imports nothing from the bridge, so
``bridge.session`` converts :class:`InvalidId` into its own error types where needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

__all__ = [
    "ID_HEX_LENGTH",
    "BlindedID",
    "GroupID",
    "InvalidId",
    "InvalidIdLength",
    "InvalidIdPrefix",
    "NotHexId",
    "SessionID",
    "UnblindedSogsID",
    "parse_any_id",
    "parse_blinded_id",
    "parse_group_id",
    "parse_session_id",
    "parse_unblinded_sogs_id",
]

KEY_BYTES = 32
ID_HEX_LENGTH = 2 + 2 * KEY_BYTES

_HEX = re.compile(r"[0-9a-f]*", re.ASCII)


class InvalidId(ValueError):
    """A string is not a valid id of the expected kind."""


class NotHexId(InvalidId):
    """The id contains characters other than hexadecimal digits."""


class InvalidIdLength(InvalidId):
    """The id is not 66 hex characters long."""


class InvalidIdPrefix(InvalidId):
    """The id is well-formed hex but its prefix is not one this kind of id allows."""


def _canonical(value: object, prefixes: tuple[str, ...], kind: str) -> str:
    """Return ``value`` lowercased after checking it is hex, 66 long and has a known prefix."""
    if not isinstance(value, str):
        raise InvalidId(f"{kind} must be a string, not {type(value).__name__}")
    text = value.lower()
    if not _HEX.fullmatch(text):
        raise NotHexId(f"{kind} must be hexadecimal")
    if len(text) != ID_HEX_LENGTH:
        raise InvalidIdLength(f"{kind} must be {ID_HEX_LENGTH} hex characters, got {len(text)}")
    if text[:2] not in prefixes:
        allowed = " or ".join(prefixes)
        raise InvalidIdPrefix(f"{kind} must start with {allowed}, not {text[:2]}")
    return text


@dataclass(frozen=True, slots=True)
class _PrefixedId:
    """Common behaviour of the 66-hex-character ids; use one of the subclasses."""

    value: str
    PREFIXES: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = "id"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _canonical(self.value, self.PREFIXES, self.KIND))

    def __str__(self) -> str:
        return self.value

    @property
    def prefix(self) -> str:
        """The two-hex-character prefix, e.g. ``"05"``."""
        return self.value[:2]

    @property
    def key(self) -> bytes:
        """The 32 key bytes after the prefix."""
        return bytes.fromhex(self.value[2:])

    @property
    def raw(self) -> bytes:
        """The 33 raw bytes: prefix byte and key."""
        return bytes.fromhex(self.value)

    @classmethod
    def from_key(cls, key: bytes, prefix: str | None = None) -> Self:
        """Build the id from a 32-byte key (and the prefix, for kinds that have two)."""
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise InvalidIdLength(f"{cls.KIND} key must be {KEY_BYTES} bytes")
        return cls((prefix or cls.PREFIXES[0]) + key.hex())

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse user or network text: surrounding whitespace is ignored, case is folded."""
        if not isinstance(text, str):
            raise InvalidId(f"{cls.KIND} must be a string, not {type(text).__name__}")
        return cls(text.strip())


@dataclass(frozen=True, slots=True)
class SessionID(_PrefixedId):
    """A Session account id: ``05`` + X25519 public key."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("05",)
    KIND: ClassVar[str] = "Session ID"


@dataclass(frozen=True, slots=True)
class BlindedID(_PrefixedId):
    """A community-blinded id: ``15`` (blind15) or ``25`` (blind25) + blinded Ed25519 key."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("15", "25")
    KIND: ClassVar[str] = "blinded id"

    @property
    def is_blind15(self) -> bool:
        """True for a ``15`` (version 1) id, the one community servers accept (§1.3)."""
        return self.prefix == "15"


@dataclass(frozen=True, slots=True)
class GroupID(_PrefixedId):
    """A groups-v2 id: ``03`` + the group's Ed25519 public key."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("03",)
    KIND: ClassVar[str] = "group id"


@dataclass(frozen=True, slots=True)
class UnblindedSogsID(_PrefixedId):
    """An unblinded community id: ``00`` + raw Ed25519 public key (``X-SOGS-Pubkey`` only)."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("00",)
    KIND: ClassVar[str] = "unblinded community id"


AnyId = SessionID | BlindedID | GroupID | UnblindedSogsID

_KIND_BY_PREFIX: dict[str, type[AnyId]] = {
    prefix: kind
    for kind in (SessionID, BlindedID, GroupID, UnblindedSogsID)
    for prefix in kind.PREFIXES
}
_ALL_PREFIXES = tuple(_KIND_BY_PREFIX)


def parse_session_id(text: str) -> SessionID:
    """Parse a ``05…`` Session ID."""
    return SessionID.parse(text)


def parse_blinded_id(text: str) -> BlindedID:
    """Parse a ``15…`` or ``25…`` blinded id."""
    return BlindedID.parse(text)


def parse_group_id(text: str) -> GroupID:
    """Parse a ``03…`` group id."""
    return GroupID.parse(text)


def parse_unblinded_sogs_id(text: str) -> UnblindedSogsID:
    """Parse a ``00…`` unblinded community id."""
    return UnblindedSogsID.parse(text)


def parse_any_id(text: str) -> AnyId:
    """Parse an id of any kind, choosing the kind from its prefix."""
    if not isinstance(text, str):
        raise InvalidId(f"id must be a string, not {type(text).__name__}")
    canonical = _canonical(text.strip(), _ALL_PREFIXES, "id")
    return _KIND_BY_PREFIX[canonical[:2]](canonical)
