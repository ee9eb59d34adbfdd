"""Generic config messages for groups::Info / groups::Members (docs/groups-v2.md §1.3-§1.13).

Reader: :func:`parse_message` (validate + verify the group signature over the received bytes),
:func:`read_blobs` (decrypt, multipart, pick the best state like libsession, §1.12).
Writer: :func:`next_message` builds the following full-state message of an admin (seqno, ``=``
diff, ``<`` lag window, signature, §1.13) and :func:`seal_message` compresses, pads and
encrypts it (multipart when too big). Merging concurrent admins' messages (§1.13 "Merging")
is not implemented: an admin must read the newest state before writing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from bridge.session.errors import CryptoError, DecodeError, SessionError
from bridge.session.groups import config_crypto, multipart
from bridge.session.groups.bencode import (
    BencodeError,
    BValue,
    RawItem,
    append_signature,
    decode_items,
    encode,
    signing_prefix,
)
from bridge.session.groups.config_data import (
    ConfigData,
    InputValue,
    diff,
    normalize,
    validate_data,
    validate_diff,
)

LAG = 5  # lag of every current config type (§1.3)
HASH_SIZE = 32
INFO_DOMAIN = b"groups::Info"
MEMBERS_DOMAIN = b"groups::Members"
_OWN_KEYS = frozenset({b"#", b"&", b"<", b"=", b"~"})


class ConfigMessageError(BencodeError):
    """A config message violates §1.3 (key order, types, lagged diffs...)."""


class ConfigSignatureError(CryptoError):
    """A group config message is unsigned or its signature does not verify (§1.6)."""


@dataclass(frozen=True, slots=True)
class LaggedDiff:
    """One ``<`` entry: the diff of an earlier message (§1.3)."""

    seqno: int
    hash: bytes
    diff: ConfigData


@dataclass(frozen=True)
class ConfigMessage:
    """A parsed, validated config message. Do not mutate the dicts it holds."""

    seqno: int
    data: ConfigData
    diff: ConfigData
    lagged: tuple[LaggedDiff, ...]
    extra: ConfigData  # unknown outer keys, kept for re-emission (§1.3)
    signature: bytes | None
    hash: bytes  # H_32 of the bytes as received, signature included (§1.6)
    raw: bytes

    @property
    def order(self) -> tuple[int, bytes]:
        """The ``(seqno, hash)`` ordering key of §1.12."""
        return (self.seqno, self.hash)


# ---------------------------------------------------------------------------------- parsing


def message_hash(bt: bytes) -> bytes:
    """Unkeyed BLAKE2b-256 of the message bytes as received (§1.6)."""
    return hashlib.blake2b(bt, digest_size=HASH_SIZE).digest()


def parse_message(bt: bytes, group_pk: bytes | None, *, lag: int = LAG) -> ConfigMessage:
    """Parse and validate a config message; verify it when ``group_pk`` is given (§1.3-§1.6).

    ``group_pk`` is the group's 32-byte Ed25519 key: group configs must carry a valid ``~``
    signature as their last key. ``None`` parses an unsigned (user) config.
    """
    bt = bytes(bt)
    items = decode_items(bt)
    if not items or items[0].key != b"#" or not isinstance(items[0].value, int):
        # Keys sorting before "#" are reserved for an incompatible future version (§1.3).
        raise ConfigMessageError("first key must be the integer seqno '#'")
    seqno = items[0].value
    if seqno < 0:
        raise ConfigMessageError("negative seqno")
    by_key = {item.key: item for item in items}
    signature = _check_signature(bt, items, group_pk)
    data = _data(by_key)
    own_diff = by_key[b"="].value if b"=" in by_key else {}
    if not isinstance(own_diff, dict):
        raise ConfigMessageError("'=' must be a dict")
    validate_diff(own_diff)
    lagged = _lagged(by_key.get(b"<"), seqno, lag)
    extra = {item.key: item.value for item in items if item.key not in _OWN_KEYS}
    return ConfigMessage(seqno, data, own_diff, lagged, extra, signature, message_hash(bt), bt)


def _check_signature(bt: bytes, items: Sequence[RawItem], group_pk: bytes | None) -> bytes | None:
    sig_items = [item for item in items if item.key == b"~"]
    if group_pk is None:
        return _plain_signature(sig_items)
    if not sig_items:
        raise ConfigSignatureError("group config is not signed")
    last = items[-1]
    # §1.6 / §10.2 #6: "~" must be the last key; it signs the prefix without the final "e".
    if last.key != b"~" or not isinstance(last.value, bytes) or len(last.value) != 64:
        raise ConfigSignatureError("signature missing, malformed or not the last key")
    if len(group_pk) != 32:
        raise ConfigSignatureError("group public key must be 32 bytes")
    try:
        VerifyKey(group_pk).verify(bt[: last.start], last.value)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError) as e:
        raise ConfigSignatureError("bad config signature") from e
    return last.value


def _plain_signature(sig_items: Sequence[RawItem]) -> bytes | None:
    if not sig_items:
        return None
    value = sig_items[0].value
    if not isinstance(value, bytes) or len(value) != 64:
        raise ConfigMessageError("'~' must be a 64-byte signature")
    return value


def _data(by_key: Mapping[bytes, RawItem]) -> ConfigData:
    item = by_key.get(b"&")
    if item is None or not isinstance(item.value, dict):
        raise ConfigMessageError("'&' data dict is required")
    validate_data(item.value)
    return item.value


def _lagged(item: RawItem | None, seqno: int, lag: int) -> tuple[LaggedDiff, ...]:
    if item is None:
        return ()
    if not isinstance(item.value, list):
        raise ConfigMessageError("'<' must be a list")
    out: list[LaggedDiff] = []
    previous: tuple[int, bytes] | None = None
    for entry in item.value:
        lagged = _lagged_entry(entry, seqno)
        if previous is not None and (lagged.seqno, lagged.hash) <= previous:
            raise ConfigMessageError("lagged diffs not strictly sorted by (seqno, hash)")
        previous = (lagged.seqno, lagged.hash)
        # §1.3: entries outside the lag window are dropped silently.
        if lagged.seqno > seqno - lag:
            out.append(lagged)
    return tuple(out)


def _lagged_entry(entry: BValue, seqno: int) -> LaggedDiff:
    if not isinstance(entry, list) or len(entry) != 3:
        raise ConfigMessageError("lagged entry must have exactly 3 elements")
    lag_seqno, lag_hash, lag_diff = entry
    if not isinstance(lag_seqno, int) or lag_seqno >= seqno:
        raise ConfigMessageError("lagged seqno must be an int below the message seqno")
    if not isinstance(lag_hash, bytes) or len(lag_hash) != HASH_SIZE:
        raise ConfigMessageError("lagged hash must be 32 bytes")
    if not isinstance(lag_diff, dict):
        raise ConfigMessageError("lagged diff must be a dict")
    validate_diff(lag_diff)
    return LaggedDiff(lag_seqno, lag_hash, lag_diff)


# ---------------------------------------------------------------------------------- reader


EMPTY_MESSAGE = b"d1:#i0e1:&de1:<le1:=dee"  # implicit seqno-0 message of a new config (§1.6)


def empty_message() -> ConfigMessage:
    """The implicit seqno-0 message every config starts from (§1.6)."""
    return parse_message(EMPTY_MESSAGE, None)


@dataclass(frozen=True)
class ConfigState:
    """The config a reader holds: the best message and the storage hashes carrying it."""

    message: ConfigMessage = field(default_factory=empty_message)
    storage_hashes: frozenset[str] = frozenset()

    @property
    def data(self) -> ConfigData:
        """The current application data ``&``."""
        return self.message.data


@dataclass(frozen=True, slots=True)
class Rejected:
    """A retrieved blob that was dropped, with a reason for one log line."""

    storage_hash: str
    reason: str


@dataclass(frozen=True)
class ReadResult:
    """Outcome of :func:`read_blobs`: the new state and what was dropped or is pending."""

    state: ConfigState
    changed: bool
    rejected: tuple[Rejected, ...]
    pending_parts: int


def read_blobs(
    blobs: Iterable[tuple[str, bytes]],
    keys: Sequence[bytes],
    domain: bytes,
    group_pk: bytes,
    current: ConfigState,
    assembler: multipart.Assembler,
    now_ms: int,
) -> ReadResult:
    """Apply retrieved ``(storage_hash, blob)`` pairs the way a non-admin reader does (§1.12).

    ``keys`` are the group encryption keys (pending first, then newest to oldest, §1.8). Every
    blob that fails to decrypt, parse or verify is reported in ``rejected``; nothing raises.
    The result keeps the largest ``(seqno, hash)`` among the valid messages and ``current``.
    """
    candidates: dict[bytes, tuple[ConfigMessage, frozenset[str]]] = {
        current.message.hash: (current.message, current.storage_hashes)
    }
    rejected: list[Rejected] = []
    pending = 0
    for storage_hash, blob in blobs:
        try:
            found = _open_blob(storage_hash, blob, keys, domain, group_pk, assembler, now_ms)
        except SessionError as e:
            rejected.append(Rejected(storage_hash, str(e)))
            continue
        if found is None:
            pending += 1
            continue
        message, hashes = found
        if message.hash in candidates:  # the same message stored again: remember all hashes
            hashes |= candidates[message.hash][1]
        candidates[message.hash] = (message, hashes)
    best, hashes = max(candidates.values(), key=lambda c: c[0].order)
    state = ConfigState(best, hashes)
    changed = best.hash != current.message.hash
    return ReadResult(state, changed, tuple(rejected), pending)


def _open_blob(
    storage_hash: str,
    blob: bytes,
    keys: Sequence[bytes],
    domain: bytes,
    group_pk: bytes,
    assembler: multipart.Assembler,
    now_ms: int,
) -> tuple[ConfigMessage, frozenset[str]] | None:
    plaintext = config_crypto.decrypt_any(blob, list(keys), domain)
    body = multipart.classify(plaintext)
    if isinstance(body, multipart.WholeBody):
        return parse_message(body.bt, group_pk), frozenset({storage_hash})
    added = assembler.add(storage_hash, body, now_ms)
    if isinstance(added, multipart.Completed):
        return parse_message(added.bt, group_pk), added.storage_hashes
    if isinstance(added, multipart.Ignored):
        raise DecodeError(f"multipart part ignored: {added.reason}")
    return None


# ---------------------------------------------------------------------------------- writer


def next_message(
    previous: ConfigMessage,
    data: Mapping[bytes, InputValue],
    group_sk: bytes | None,
    *,
    lag: int = LAG,
) -> bytes:
    """Serialise the admin's next full-state message after ``previous`` (§1.13).

    ``seqno = previous.seqno + 1``, ``=`` = diff(previous data, data), ``<`` = the lag window
    of earlier diffs plus ``previous``'s own; unknown outer keys of ``previous`` are kept.
    ``group_sk`` is the 64-byte libsodium group secret key (``None`` for unsigned user
    configs). Returns the plaintext bt bytes; pass them to :func:`seal_message`.
    """
    new_data = normalize(data)
    seqno = previous.seqno + 1
    history = [*previous.lagged, LaggedDiff(previous.seqno, previous.hash, previous.diff)]
    window = sorted(
        (d for d in history if seqno - lag < d.seqno < seqno), key=lambda d: (d.seqno, d.hash)
    )
    message: dict[bytes, BValue] = dict(previous.extra)
    message[b"#"] = seqno
    message[b"&"] = new_data
    message[b"<"] = [[d.seqno, d.hash, d.diff] for d in window]
    message[b"="] = diff(previous.data, new_data)
    return sign_message(encode(message), group_sk)


def sign_message(unsigned: bytes, group_sk: bytes | None) -> bytes:
    """Sign an encoded message with the group key: signature over it minus the final ``e``."""
    if group_sk is None:
        return unsigned
    if len(group_sk) != 64:
        raise ConfigSignatureError("group secret key must be the 64-byte libsodium form")
    signature = SigningKey(group_sk[:32]).sign(signing_prefix(unsigned)).signature
    return append_signature(unsigned, signature)


def seal_message(
    bt: bytes, key_base: bytes, domain: bytes, *, use_zstd: bool = True
) -> list[bytes]:
    """Compress, pad and encrypt ``bt`` (§1.7, §1.8); split into parts when too big (§1.10)."""
    body = config_crypto.compress(bt) if use_zstd else bytes(bt)
    padded = config_crypto.pad(body)
    if len(padded) <= multipart.SINGLE_LIMIT:
        return [config_crypto.encrypt(padded, key_base, domain)]
    return [config_crypto.encrypt(part, key_base, domain) for part in multipart.split(padded)]
