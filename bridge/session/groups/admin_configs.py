"""An admin's copy of one group config (Info or Members): read, merge, write (pure).

docs/groups-v2.md §1.13: the admin keeps the config it last adopted or pushed. Loading the
swarm's messages merges them with it (:mod:`.config_merge`); when that leaves a merge, the
merged message must be pushed (``dirty``). Every storage hash that no longer carries the
current message becomes *obsolete*, deleted with the next push.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bridge.session.errors import SessionError
from bridge.session.groups import config_crypto, multipart
from bridge.session.groups.config import ConfigMessage, empty_message, next_message, parse_message
from bridge.session.groups.config_data import ConfigData, InputValue
from bridge.session.groups.config_merge import Merged, merge, merged_message

__all__ = ["AdminConfig"]


class AdminConfig:
    """One config namespace as an admin holds it (no I/O)."""

    def __init__(self, domain: bytes, group_pk: bytes) -> None:
        self.domain = domain
        self.group_pk = group_pk
        self.current: ConfigMessage = empty_message()
        self.merged: Merged | None = None
        self.hashes: set[str] = set()  # storage hashes carrying ``current``
        self.obsolete: set[str] = set()  # to delete with the next push
        self._assembler = multipart.Assembler()

    @property
    def data(self) -> ConfigData:
        """The current data (of the pending merge, if any)."""
        return self.merged.data if self.merged is not None else self.current.data

    @property
    def dirty(self) -> bool:
        """A merge waits to be pushed."""
        return self.merged is not None

    def load(self, blobs: Iterable[tuple[str, bytes]], keys: Sequence[bytes], now_ms: int) -> bool:
        """Merge the swarm's ``(storage_hash, blob)`` with ours; True when the result changed."""
        found: dict[bytes, tuple[ConfigMessage, set[str]]] = {}
        for storage_hash, blob in blobs:
            opened = self._open(storage_hash, blob, keys, now_ms)
            if opened is not None:
                message, hashes = opened
                found.setdefault(message.hash, (message, set()))[1].update(hashes)
        own = self.current
        if own.hash not in found:
            found[own.hash] = (own, set(self.hashes))
        all_hashes = set().union(*(h for _, h in found.values()))
        result = merge([m for m, _ in found.values()])
        if isinstance(result, ConfigMessage):
            changed = result.hash != own.hash or self.merged is not None
            self.current, self.merged = result, None
            self.hashes = found[result.hash][1]
        else:
            changed = True
            self.merged = result
            self.hashes = set()
        self.obsolete |= all_hashes - self.hashes
        return changed

    def write(self, data: Mapping[bytes, InputValue] | None, group_sk: bytes) -> bytes:
        """The signed bt of the next message: ``data`` (or unchanged) after the current one."""
        if self.merged is not None:
            return merged_message(self.merged, data, group_sk)
        return next_message(self.current, self.current.data if data is None else data, group_sk)

    def pushed(self, bt: bytes, storage_hashes: Iterable[str]) -> None:
        """Record our pushed message as current; what carried the old one becomes obsolete."""
        self.obsolete |= self.hashes
        self.current = parse_message(bt, self.group_pk)
        self.merged = None
        self.hashes = set(storage_hashes)
        self.obsolete -= self.hashes

    def _open(
        self, storage_hash: str, blob: bytes, keys: Sequence[bytes], now_ms: int
    ) -> tuple[ConfigMessage, frozenset[str]] | None:
        try:
            plaintext = config_crypto.decrypt_any(blob, list(keys), self.domain)
            body = multipart.classify(plaintext)
            if isinstance(body, multipart.WholeBody):
                return parse_message(body.bt, self.group_pk), frozenset({storage_hash})
            added = self._assembler.add(storage_hash, body, now_ms)
            if isinstance(added, multipart.Completed):
                return parse_message(added.bt, self.group_pk), added.storage_hashes
        except SessionError:
            return None  # another key, a newer client, or garbage: skipped as readers do
        return None
