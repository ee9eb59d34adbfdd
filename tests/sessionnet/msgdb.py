"""One storage node's message database (in memory), with the real ordering semantics.

Messages are kept per account in the order this node stored them; ``last_hash`` means
"everything stored here after that hash", and an unknown ``last_hash`` returns everything from
the start, as the real storage server's SQL does (§6.6).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

#: Maximum retrieve size of the network (~7.8 MB, §6.6, §6.12).
RETRIEVE_MAX_SIZE = 7_800_000
#: Per-message overhead counted towards ``max_size`` besides the base64 data.
MESSAGE_OVERHEAD = 100


@dataclass
class StoredMessage:
    """A message as one node holds it."""

    hash: str
    namespace: int
    timestamp: int
    expiry: int
    data: bytes

    def to_json(self) -> dict[str, object]:
        """The retrieve form; the real node calls the expiry field ``expiration``."""
        return {
            "hash": self.hash,
            "timestamp": self.timestamp,
            "expiration": self.expiry,
            "data": base64.b64encode(self.data).decode(),
        }


class MessageDB:
    """Messages of all accounts on one node."""

    def __init__(self) -> None:
        self._accounts: dict[str, dict[str, StoredMessage]] = {}

    def purge(self, now: int) -> None:
        """Drop expired messages."""
        for msgs in self._accounts.values():
            for h in [h for h, m in msgs.items() if m.expiry < now]:
                del msgs[h]

    def put(self, account: str, msg: StoredMessage, *, singleton: bool = False) -> bool:
        """Store; returns False if the hash was already there (the expiry may grow)."""
        msgs = self._accounts.setdefault(account, {})
        old = msgs.get(msg.hash)
        if old is not None:
            old.expiry = max(old.expiry, msg.expiry)
            return False
        if singleton:  # public outbox: storing replaces what was there (§6.11)
            for h in [h for h, m in msgs.items() if m.namespace == msg.namespace]:
                del msgs[h]
        msgs[msg.hash] = msg
        return True

    def get(self, account: str, hash_: str) -> StoredMessage | None:
        """One message by hash."""
        return self._accounts.get(account, {}).get(hash_)

    def all(self, account: str) -> list[StoredMessage]:
        """All messages of an account in this node's order."""
        return list(self._accounts.get(account, {}).values())

    def retrieve(
        self,
        account: str,
        namespace: int,
        last_hash: str | None,
        max_count: int | None,
        max_size: int,
    ) -> tuple[list[StoredMessage], bool]:
        """Messages after ``last_hash`` (all of them if it is unknown), and whether more."""
        in_ns = [m for m in self.all(account) if m.namespace == namespace]
        start = 0
        for i, m in enumerate(in_ns):
            if m.hash == last_hash:
                start = i + 1
                break
        out: list[StoredMessage] = []
        size = 0
        for m in in_ns[start:]:
            cost = len(m.data) * 4 // 3 + MESSAGE_OVERHEAD
            if (max_count is not None and len(out) >= max_count) or (
                out and size + cost > max_size
            ):
                return out, True
            out.append(m)
            size += cost
        return out, False

    def delete(self, account: str, hashes: Iterable[str]) -> list[str]:
        """Delete by hash; returns the hashes that were deleted."""
        msgs = self._accounts.get(account, {})
        return [h for h in hashes if msgs.pop(h, None) is not None]

    def delete_all(self, account: str, namespace: int | None) -> list[tuple[int, str]]:
        """Delete a namespace (``None``: every namespace); returns (namespace, hash) pairs."""
        msgs = self._accounts.get(account, {})
        gone = [(m.namespace, h) for h, m in msgs.items() if namespace in (None, m.namespace)]
        for _, h in gone:
            del msgs[h]
        return gone

    def accounts(self) -> list[str]:
        """The accounts this node holds messages of."""
        return [a for a, msgs in self._accounts.items() if msgs]

    def drop_account(self, account: str) -> list[StoredMessage]:
        """Remove and return every message of an account (swarm migration)."""
        return list(self._accounts.pop(account, {}).values())
