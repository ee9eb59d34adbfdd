"""groups::Keys (namespace 12): parse, verify and find our key (docs/groups-v2.md §3.1-§3.3, §3.5).

A keys message is a bt dict signed by the group key (§1.6), *not* a config message. A full
(rekey) message carries the new group encryption key encrypted once for the admins (``K``) and
once per member (``k``, padded with junk entries); a supplemental message (``+``) hands older
keys to new members. All entries share the nonce ``#`` and are XChaCha20-Poly1305 boxes under
the member key ``H_32(X25519(·,·) || A'(group) || B(member), key="SessionGroupKeyMemberKey")``
(the multi-encrypt key of §4.4 with the group's X25519 key as sender, risk #9).

The admin writer (:func:`make_rekey`, :func:`make_supplement`) is here too; the key list
itself (ordering, expiry, pending key, §3.6) is :mod:`.keyring`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import nacl.bindings as sodium

from bridge.ids import SessionID
from bridge.session.errors import CryptoError, DecodeError, InvalidInput
from bridge.session.groups import bencode
from bridge.session.groups.multi_encrypt import (
    NONCE_SIZE,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    ed25519_pk_to_x25519,
    ed25519_sk_to_x25519,
    multi_encrypt_key,
)
from bridge.session.keys import BadSignatureError, Identity, verify_ed25519

__all__ = [
    "ENTRY_SIZE",
    "KEY_PADDING_MULTIPLE",
    "GroupKey",
    "GroupKeyPair",
    "KeysMessage",
    "KeysMessageError",
    "KeysSignatureError",
    "MalformedKeysMessage",
    "Rekey",
    "admin_key",
    "decrypt_keys",
    "make_rekey",
    "make_supplement",
    "member_key",
    "member_key_for",
    "parse_keys_message",
]

#: A 32-byte key boxed with XChaCha20-Poly1305: 32 + 16 bytes (§3.1 ``K`` and ``k`` entries).
ENTRY_SIZE = 48
#: Writers pad ``k`` to a multiple of 45 (v1.2.0; 75 before 2025-02-21 — risk #2). Readers
#: accept any count, as §3.1 recommends.
KEY_PADDING_MULTIPLE = 45
#: A supplemental entry holds at least a one-key bt list plus the tag (§3.1).
MIN_SUPPLEMENT_ENTRY = 68
KEY_SIZE = 32

_ADMIN_KEY = b"SessionGroupKeyAdminKey"
_MEMBER_KEY = b"SessionGroupKeyMemberKey"


class KeysMessageError(DecodeError):
    """Base class of the errors of a keys message."""


class MalformedKeysMessage(KeysMessageError):
    """The keys message does not have the layout of §3.1 (reject the whole message)."""


class KeysSignatureError(CryptoError):
    """The keys message is not signed by the group key."""


@dataclass(frozen=True, slots=True)
class GroupKeyPair:
    """The group's Ed25519 key pair, from its 32-byte seed (admins only, §3.2)."""

    seed: bytes = field(repr=False)
    public: bytes = field(init=False)
    secret: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise InvalidInput("a group seed is 32 bytes")
        public, secret = sodium.crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "public", bytes(public))
        object.__setattr__(self, "secret", bytes(secret))

    def sign(self, message: bytes) -> bytes:
        """Plain Ed25519 signature by the group key."""
        return bytes(sodium.crypto_sign(message, self.secret)[:64])


@dataclass(frozen=True, order=True, slots=True)
class GroupKey:
    """One group encryption key. Orders by ``(generation, timestamp, key)`` as in §3.6."""

    generation: int
    timestamp: int  # swarm storage time (ms) of the carrying message, or ``t`` of a supplement
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeysMessage:
    """A parsed, signature-checked keys message."""

    nonce: bytes
    generation: int
    admin_entry: bytes | None = field(repr=False)  # ``K``: full messages only
    member_entries: tuple[bytes, ...] = field(repr=False)  # ``k`` (with junk)
    supplement_entries: tuple[bytes, ...] = field(repr=False)  # ``+``

    @property
    def is_supplement(self) -> bool:
        """True for a supplemental (``+``) message."""
        return self.admin_entry is None


def admin_key(group_seed: bytes) -> bytes:
    """``H_32(seed, key="SessionGroupKeyAdminKey")``: decrypts ``K`` (§3.2)."""
    return blake2b(GroupKeyPair(group_seed).seed, 32, key=_ADMIN_KEY)


def member_key(identity: Identity, group_ed25519_pk: bytes) -> bytes:
    """Member side: ``H_32(X25519(a, A') || A' || B, key=…MemberKey)`` (§3.2, risk #9).

    ``A'`` is the X25519 form of the group's Ed25519 key; it goes first because the group is
    the sender. Raises :class:`CryptoError` for an unusable group key.
    """
    group_x = ed25519_pk_to_x25519(group_ed25519_pk)
    return multi_encrypt_key(
        identity.x25519_secret, group_x, group_x, identity.x25519_public, _MEMBER_KEY
    )


def member_key_for(group: GroupKeyPair, member: SessionID) -> bytes:
    """Admin side: the same key from the group secret and the member's X25519 key (§3.2)."""
    group_x = ed25519_pk_to_x25519(group.public)
    return multi_encrypt_key(
        ed25519_sk_to_x25519(group.secret), member.key, group_x, member.key, _MEMBER_KEY
    )


def _entries(value: bencode.BValue | None, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(e, bytes) for e in value):
        raise MalformedKeysMessage(f"{what} must be a list of byte strings")
    return tuple(e for e in value if isinstance(e, bytes))


def _check_signature(data: bytes, group_ed25519_pk: bytes) -> None:
    try:
        parts = bencode.split_signature(data)
    except bencode.BencodeError as exc:
        raise MalformedKeysMessage(f"keys message signature missing: {exc}") from exc
    try:
        verify_ed25519(group_ed25519_pk, parts.prefix, parts.signature)
    except BadSignatureError as exc:
        raise KeysSignatureError("keys message is not signed by the group") from exc


def parse_keys_message(data: bytes, group_ed25519_pk: bytes) -> KeysMessage:
    """Parse and verify a ns 12 message (§3.1). Raises a :class:`KeysMessageError` subclass
    or :class:`KeysSignatureError`; unknown extra keys are tolerated.

    The ``k`` count is not required to be a multiple of 45 (risk #2: accept any).
    """
    try:
        d = bencode.decode_dict(data)
        nonce = bencode.get_bytes(d, b"#", NONCE_SIZE)
        generation = bencode.get_int(d, b"G")
    except bencode.BencodeError as exc:
        raise MalformedKeysMessage(f"not a keys message: {exc}") from exc
    if generation < 0:
        raise MalformedKeysMessage("generation must be >= 0")
    admin_entry: bytes | None = None
    members: tuple[bytes, ...] = ()
    supplements: tuple[bytes, ...] = ()
    if b"+" in d:
        supplements = _entries(d[b"+"], "'+'")
        if any(len(e) < MIN_SUPPLEMENT_ENTRY for e in supplements):
            raise MalformedKeysMessage("supplemental entry too short")
    else:
        admin_value = d.get(b"K")
        if not isinstance(admin_value, bytes) or len(admin_value) != ENTRY_SIZE:
            raise MalformedKeysMessage("'K' must be 48 bytes")
        admin_entry = admin_value
        members = _entries(d.get(b"k"), "'k'")
        if any(len(e) != ENTRY_SIZE for e in members):
            raise MalformedKeysMessage("'k' entries must be 48 bytes")
    _check_signature(bytes(data), group_ed25519_pk)
    return KeysMessage(nonce, generation, admin_entry, members, supplements)


def _decode_key_list(plain: bytes) -> list[GroupKey]:
    """The plaintext of a supplemental entry: ``bt([{g, k, t}, …])`` (§3.1)."""
    try:
        items = bencode.decode(plain)
        if not isinstance(items, list) or not items:
            raise MalformedKeysMessage("supplement must hold a non-empty key list")
        keys = []
        for item in items:
            if not isinstance(item, dict):
                raise MalformedKeysMessage("supplement key entries must be dicts")
            gen = bencode.get_int(item, b"g")
            timestamp = bencode.get_int(item, b"t")
            key = bencode.get_bytes(item, b"k", KEY_SIZE)
            if gen < 0:
                raise MalformedKeysMessage("supplement generation must be >= 0")
            keys.append(GroupKey(gen, timestamp, key))
    except bencode.BencodeError as exc:
        raise MalformedKeysMessage(f"bad supplement key list: {exc}") from exc
    return keys


def decrypt_keys(
    message: KeysMessage,
    storage_timestamp: int,
    *,
    identity: Identity | None = None,
    group_ed25519_pk: bytes | None = None,
    group: GroupKeyPair | None = None,
) -> list[GroupKey]:
    """The keys this message gives us (§3.3); empty when it has nothing for us.

    Members pass ``identity`` and ``group_ed25519_pk``; admins pass ``group`` (``K`` is then
    decrypted with the admin key; with ``identity`` too, member entries are tried after).
    Full messages yield ``(G, key, storage_timestamp)``; supplements yield every ``{g, k, t}``
    of our entry. Every entry is tried: junk simply fails to decrypt (risk #2).
    Raises :class:`MalformedKeysMessage` if our supplement entry holds a bad key list.
    """
    if group is not None and message.admin_entry is not None:
        key = aead_decrypt(message.admin_entry, message.nonce, admin_key(group.seed))
        if key is not None and len(key) == KEY_SIZE:
            return [GroupKey(message.generation, storage_timestamp, key)]
    if identity is None:
        return []
    group_pk = group.public if group is not None else group_ed25519_pk
    if group_pk is None:
        raise InvalidInput("a member needs the group public key")
    try:
        mine = member_key(identity, group_pk)
    except CryptoError:
        return []
    for entry in message.supplement_entries:
        plain = aead_decrypt(entry, message.nonce, mine)
        if plain is not None:
            return _decode_key_list(plain)
    for entry in message.member_entries:
        plain = aead_decrypt(entry, message.nonce, mine)
        if plain is not None and len(plain) == KEY_SIZE:
            return [GroupKey(message.generation, storage_timestamp, plain)]
    return []


# ------------------------------------------------------------------------------ admin writer

_KEY_GEN = b"SessionGroupKeyGen"
_SEED_HASH = b"SessionGroupKeySeed"
_JUNK = b"SessionGroupJunkMembers"


@dataclass(frozen=True, slots=True)
class Rekey:
    """A new generation made by :func:`make_rekey`: store ``message`` in ns 12 (§3.4)."""

    generation: int
    key: bytes = field(repr=False)
    message: bytes = field(repr=False)


def _sign_dict(group: GroupKeyPair, unsigned: bytes) -> bytes:
    # §1.6: sign the encoding without its final "e", then append 1:~64:<sig>e.
    signature = group.sign(bencode.signing_prefix(unsigned))
    return bencode.append_signature(unsigned, signature)


def make_rekey(group: GroupKeyPair, members: Iterable[SessionID], generation: int) -> Rekey:
    """A full keys message for ``members`` (all of them, admins included), §3.2/§3.4.

    Key and nonce come from ``h1 = H_56(sorted hex ids || decimal(gen) || h2)``, so two admins
    rekeying the same group identically produce the same bytes. ``k`` holds one entry per
    member (sorted, unusable ids skipped) padded with deterministic junk to a multiple of 45.
    """
    if generation < 0:
        raise InvalidInput("generation must be >= 0")
    sids = sorted({m.value for m in members})
    h2 = blake2b(group.seed, 32, key=_SEED_HASH)
    h1 = blake2b("".join(sids).encode() + str(generation).encode() + h2, 56, key=_KEY_GEN)
    key, nonce = h1[:KEY_SIZE], h1[KEY_SIZE:]
    entries = []
    for sid in sids:
        try:
            entries.append(aead_encrypt(key, nonce, member_key_for(group, SessionID(sid))))
        except CryptoError:
            continue  # libsession skips ids whose X25519 multiplication fails (§3.4)
    n_junk = -len(entries) % KEY_PADDING_MULTIPLE
    if n_junk:
        seed2 = blake2b(h1 + group.secret, 32, key=_JUNK)
        junk = sodium.randombytes_buf_deterministic(ENTRY_SIZE * n_junk, seed2)
        entries += [junk[i : i + ENTRY_SIZE] for i in range(0, len(junk), ENTRY_SIZE)]
    unsigned = bencode.encode(
        {
            b"#": nonce,
            b"G": generation,
            b"K": aead_encrypt(key, nonce, admin_key(group.seed)),
            b"k": entries,
        }
    )
    return Rekey(generation, key, _sign_dict(group, unsigned))


def make_supplement(
    group: GroupKeyPair, recipients: Sequence[SessionID], keys: Iterable[GroupKey]
) -> bytes:
    """A supplemental keys message giving ``keys`` to ``recipients`` (§3.5).

    ``keys`` should be all currently kept keys; they are written in ascending order with their
    timestamps, ``G`` is the newest generation. The nonce hashes the ids *in the given order*.
    """
    key_list = sorted(keys)
    if not key_list or not recipients:
        raise InvalidInput("a supplement needs at least one key and one recipient")
    plain = bencode.encode(
        [{b"g": k.generation, b"k": k.key, b"t": k.timestamp} for k in key_list]
    )
    h2 = blake2b(group.seed, 32, key=_SEED_HASH)
    ids = "".join(sid.value for sid in recipients).encode()
    nonce = blake2b(ids + plain + h2, NONCE_SIZE, key=_KEY_GEN)
    entries = []
    for sid in recipients:
        try:
            entries.append(aead_encrypt(plain, nonce, member_key_for(group, sid)))
        except CryptoError:
            continue
    if not entries:
        raise InvalidInput("no usable recipient for the supplement")
    generation = max(k.generation for k in key_list)
    unsigned = bencode.encode({b"#": nonce, b"+": entries, b"G": generation})
    return _sign_dict(group, unsigned)
