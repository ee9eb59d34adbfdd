"""Multipart config messages: the ``m`` body prefix (docs/groups-v2.md §1.10).

A config too large for one stored message (76 800 bytes, §1.9) is split: each part's
plaintext is ``'m' || bt([final_hash, bytes([index]), bytes([count]), chunk])``, encrypted on
its own with ``config::encrypt``. :func:`classify` tells a whole body from a part,
:class:`Assembler` collects parts (pure: the caller passes the time and keeps the object), and
:func:`split` is the writer's side.

Doubt (§11 #3): the index base is not stated by our sources; the writer numbers parts from 0
and the reader accepts a complete set numbered either 0..N-1 or 1..N.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bridge.session.errors import DecodeError
from bridge.session.groups import config_crypto
from bridge.session.groups.bencode import BencodeError, decode, encode

MAX_PART_CHUNK = 76_800 - 50 - 40  # 76 710 (§1.10)
SINGLE_LIMIT = config_crypto.MAX_MESSAGE_SIZE - config_crypto.OVERHEAD
MAX_PARTS = 255
HASH_SIZE = 32
INCOMPLETE_TTL_MS = 7 * 24 * 3600 * 1000  # libsession keeps incomplete sets 7 days (§1.10)
COMPLETED_TTL_MS = 14 * 24 * 3600 * 1000  # ...and remembers completed ones 14 days


class MultipartError(DecodeError):
    """An ``m`` body is malformed (§1.10)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One decoded part of a multipart config message."""

    final_hash: bytes
    index: int
    count: int
    chunk: bytes


@dataclass(frozen=True, slots=True)
class WholeBody:
    """A complete (unpadded, decompressed) config message body starting with ``d``."""

    bt: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """A part was stored; ``have`` of ``count`` parts are known for ``final_hash``."""

    final_hash: bytes
    have: int
    count: int


@dataclass(frozen=True, slots=True)
class Completed:
    """All parts arrived: ``bt`` is the config message, carried by ``storage_hashes``."""

    final_hash: bytes
    bt: bytes
    storage_hashes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Ignored:
    """The part was dropped without error (duplicate, already completed, inconsistent)."""

    final_hash: bytes
    reason: str


AddResult = Pending | Completed | Ignored


def parse_part(body: bytes) -> Part:
    """Decode an unpadded ``m`` body; raise :class:`MultipartError` (or ``BencodeError``)."""
    if not body.startswith(config_crypto.MULTIPART_PREFIX):
        raise MultipartError("not a multipart body")
    value = decode(body[1:])
    if not isinstance(value, list) or len(value) != 4:
        raise MultipartError("multipart body must be a 4-element list")
    final_hash, index, count, chunk = value
    # §1.10: index and count are 1-byte *strings*, not bt integers.
    if not (
        isinstance(final_hash, bytes)
        and len(final_hash) == HASH_SIZE
        and isinstance(index, bytes)
        and len(index) == 1
        and isinstance(count, bytes)
        and len(count) == 1
        and isinstance(chunk, bytes)
        and chunk
    ):
        raise MultipartError("malformed multipart fields")
    if not 2 <= count[0] <= MAX_PARTS or index[0] > count[0]:
        raise MultipartError("multipart index/count out of range")
    return Part(final_hash, index[0], count[0], chunk)


def classify(plaintext: bytes) -> WholeBody | Part:
    """Classify a decrypted config plaintext: a whole message or one multipart part."""
    body = config_crypto.unpad(plaintext)
    if body.startswith(config_crypto.MULTIPART_PREFIX):
        try:
            return parse_part(body)
        except BencodeError as e:
            raise MultipartError(f"bad multipart body: {e}") from e
    return WholeBody(config_crypto.decompress(body))


def split(padded_body: bytes) -> list[bytes]:
    """Split a padded body into multipart plaintexts (each to be encrypted with §1.8)."""
    if len(padded_body) <= SINGLE_LIMIT:
        raise MultipartError("body fits in one message; multipart not needed")
    chunks = [
        padded_body[i : i + MAX_PART_CHUNK] for i in range(0, len(padded_body), MAX_PART_CHUNK)
    ]
    if len(chunks) > MAX_PARTS:
        raise MultipartError("config too large even for multipart")
    final_hash = hashlib.blake2b(padded_body, digest_size=HASH_SIZE).digest()
    count = bytes([len(chunks)])
    return [
        config_crypto.MULTIPART_PREFIX + encode([final_hash, bytes([i]), count, chunk])
        for i, chunk in enumerate(chunks)
    ]


@dataclass
class _PartSet:
    count: int
    first_seen_ms: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    storage_hashes: set[str] = field(default_factory=set)


@dataclass
class Assembler:
    """Collects multipart parts per ``final_hash`` (§1.10). Owned by one config reader."""

    incomplete: dict[bytes, _PartSet] = field(default_factory=dict)
    completed: dict[bytes, int] = field(default_factory=dict)

    def add(self, storage_hash: str, part: Part, now_ms: int) -> AddResult:
        """Record ``part`` (stored under ``storage_hash``); return what happened."""
        if part.final_hash in self.completed:
            return Ignored(part.final_hash, "set already completed")
        parts = self.incomplete.setdefault(part.final_hash, _PartSet(part.count, now_ms))
        if parts.count != part.count:
            return Ignored(part.final_hash, "part count disagrees with earlier parts")
        if part.index in parts.chunks:
            return Ignored(part.final_hash, "duplicate part")
        parts.chunks[part.index] = part.chunk
        parts.storage_hashes.add(storage_hash)
        if len(parts.chunks) < parts.count:
            return Pending(part.final_hash, len(parts.chunks), parts.count)
        return self._finish(part.final_hash, parts, now_ms)

    def _finish(self, final_hash: bytes, parts: _PartSet, now_ms: int) -> AddResult:
        del self.incomplete[final_hash]
        indexes = sorted(parts.chunks)
        if indexes not in (list(range(parts.count)), list(range(1, parts.count + 1))):
            return Ignored(final_hash, "part indexes are not contiguous")
        padded = b"".join(parts.chunks[i] for i in indexes)
        if hashlib.blake2b(padded, digest_size=HASH_SIZE).digest() != final_hash:
            return Ignored(final_hash, "reassembled body does not match its hash")
        try:
            bt = config_crypto.decompress(config_crypto.unpad(padded))
        except config_crypto.ConfigBodyError as e:
            return Ignored(final_hash, f"reassembled body invalid: {e}")
        self.completed[final_hash] = now_ms
        return Completed(final_hash, bt, frozenset(parts.storage_hashes))

    def prune(self, now_ms: int) -> None:
        """Forget incomplete sets older than 7 days and completed ones older than 14 days."""
        for key in [
            k for k, v in self.incomplete.items() if now_ms - v.first_seen_ms > INCOMPLETE_TTL_MS
        ]:
            del self.incomplete[key]
        for key in [k for k, t in self.completed.items() if now_ms - t > COMPLETED_TTL_MS]:
            del self.completed[key]
