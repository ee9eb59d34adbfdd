"""The list of group encryption keys a member or admin holds (docs/groups-v2.md §3.3, §3.4, §3.6).

Keys are kept sorted by ``(generation, timestamp, key)``; timestamps are swarm storage times
(ms), never the local clock (risk #11). A generation is dropped once the *next* generation's
earliest key is more than 60 days older than the newest key. Decryption tries the pending key
(an admin's own rekey not yet seen on the swarm) first, then newest → oldest.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from bridge.ids import SessionID
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.groups.keys import (
    GroupKey,
    GroupKeyPair,
    Rekey,
    decrypt_keys,
    make_rekey,
    make_supplement,
    parse_keys_message,
)
from bridge.session.keys import Identity

__all__ = ["KEY_EXPIRY_MS", "GroupKeyring", "NoGroupKey"]

#: libsession ``KEY_EXPIRY``: 60 days (§3.6).
KEY_EXPIRY_MS = 60 * 24 * 60 * 60 * 1000


class NoGroupKey(SessionError):
    """We hold no group encryption key yet (no keys message decrypted for us)."""


class GroupKeyring:
    """Group keys of one group for one member (``identity``) or admin (``group``).

    Feed every ns 12 message to :meth:`load_message` (all of them before configs and messages,
    §6.3). The object is mutable local state of one group; it does no I/O.
    """

    def __init__(
        self,
        group_ed25519_pk: bytes,
        *,
        identity: Identity | None = None,
        group: GroupKeyPair | None = None,
    ) -> None:
        if len(group_ed25519_pk) != 32:
            raise InvalidInput("the group public key is 32 bytes")
        if group is not None and group.public != group_ed25519_pk:
            raise InvalidInput("the group seed does not match the group public key")
        if identity is None and group is None:
            raise InvalidInput("a keyring needs a member identity or the group seed")
        self.group_ed25519_pk = group_ed25519_pk
        self._identity = identity
        self._group = group
        self._keys: list[GroupKey] = []
        self._active: dict[int, set[str]] = {}  # generation -> storage hashes (§3.6)
        self._pending: Rekey | None = None

    @property
    def is_admin(self) -> bool:
        """True when the group seed is known."""
        return self._group is not None

    @property
    def keys(self) -> list[GroupKey]:
        """The kept keys, oldest first (sorted by generation, timestamp, key)."""
        return list(self._keys)

    @property
    def pending(self) -> Rekey | None:
        """Our own rekey not yet seen back from the swarm (§3.4)."""
        return self._pending

    def decryption_keys(self) -> list[bytes]:
        """Keys to try, in order: pending first, then newest → oldest (§1.8, §3.6)."""
        ordered = [k.key for k in reversed(self._keys)]
        if self._pending is not None:
            ordered.insert(0, self._pending.key)
        return ordered

    def encryption_key(self) -> bytes:
        """The key new messages and configs use: the pending key, else the newest."""
        if self._pending is not None:
            return self._pending.key
        if not self._keys:
            raise NoGroupKey("no group key known yet")
        return self._keys[-1].key

    @property
    def current_generation(self) -> int | None:
        """Generation of the newest kept key (``None`` without keys)."""
        return self._keys[-1].generation if self._keys else None

    def current_hashes(self) -> set[str]:
        """Storage hashes of keys messages of generations still kept: keep them alive (§3.6)."""
        return set().union(*self._active.values()) if self._active else set()

    def load_message(self, data: bytes, storage_hash: str, storage_timestamp: int) -> bool:
        """Verify a ns 12 message and insert the keys it holds for us (§3.3).

        Returns whether a key was found. A valid message without a key for us is still
        remembered as active under its generation. Raises the errors of
        :func:`.keys.parse_keys_message` for an invalid message (nothing is changed then).
        """
        message = parse_keys_message(data, self.group_ed25519_pk)
        found = decrypt_keys(
            message,
            storage_timestamp,
            identity=self._identity,
            group_ed25519_pk=self.group_ed25519_pk,
            group=self._group,
        )
        if not found:
            self._active.setdefault(message.generation, set()).add(storage_hash)
            self._remove_expired()
        for key in found:
            self._insert(key, storage_hash)
        pending = self._pending
        if pending is not None and (
            message.generation > pending.generation or any(k.key == pending.key for k in found)
        ):
            self._pending = None  # our own rekey came back, or someone rekeyed past it
        return bool(found)

    def _insert(self, new: GroupKey, storage_hash: str) -> None:
        # Same (generation, key) already known: only remember the extra storage hash (§3.6).
        if any(k.generation == new.generation and k.key == new.key for k in self._keys):
            self._active.setdefault(new.generation, set()).add(storage_hash)
            return
        position = bisect.bisect_left(self._keys, new)
        if (
            len(self._keys) >= 2
            and position == 0
            and new.generation < self._keys[0].generation
            and self._keys[0].timestamp + KEY_EXPIRY_MS < self._keys[-1].timestamp
        ):
            return  # older than everything we keep, and already expired
        self._active.setdefault(new.generation, set()).add(storage_hash)
        self._keys.insert(position, new)
        self._remove_expired()

    def _remove_expired(self) -> None:
        """Drop generations whose successor is > 60 days older than the newest key (§3.6)."""
        keys = self._keys
        if len(keys) < 2:
            return
        newest = keys[-1].timestamp
        cut = 0
        for i in range(1, len(keys)):
            if keys[i].generation == keys[i - 1].generation:
                continue
            # keys[i] is the earliest key of its generation: everything before it has lapsed
            # when it is itself more than KEY_EXPIRY older than the newest key.
            if keys[i].timestamp + KEY_EXPIRY_MS < newest:
                cut = i
            else:
                break
        if cut:
            # Active-hash bookkeeping of the dropped generations goes too (§3.6).
            lapsed = keys[cut - 1].generation
            del keys[:cut]
            for generation in [g for g in self._active if g <= lapsed]:
                del self._active[generation]

    def needs_rekey(self) -> bool:
        """Admin only: the two newest keys share a generation (concurrent rekeys, §3.6)."""
        return (
            self.is_admin
            and len(self._keys) >= 2
            and self._keys[-1].generation == self._keys[-2].generation
        )

    def rekey(self, members: Iterable[SessionID]) -> Rekey:
        """Admin: a new generation for ``members`` (all of them, §3.4); it becomes pending.

        Store ``message`` in ns 12 before re-encrypting Info/Members with the new key.
        """
        if self._group is None:
            raise InvalidInput("only an admin (with the group seed) can rekey")
        known = [k.generation for k in self._keys] + list(self._active)
        if self._pending is not None:
            known.append(self._pending.generation)
        self._pending = make_rekey(self._group, members, max(known, default=-1) + 1)
        return self._pending

    def supplement(self, recipients: Sequence[SessionID]) -> bytes:
        """Admin: a supplemental message giving every kept key to ``recipients`` (§3.5)."""
        if self._group is None:
            raise InvalidInput("only an admin (with the group seed) can write supplements")
        return make_supplement(self._group, recipients, self._keys)
