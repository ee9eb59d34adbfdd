"""Where group state lives between restarts: cursors, seen hashes, received config bytes and
memberships (a Protocol; :class:`MemoryGroupStore` is the in-memory implementation).

Keys and config messages (ns 12-14) are kept as *received bytes*, so that a restarted member
rebuilds its keyring and Info/Members exactly (never re-encoded, risk #5) and an admin writer
can later merge on them (§1.13). Cursors are per (node, group, namespace) (§6.2); the store also
says which nodes hold a group's cursors and which moved last (:meth:`GroupStore.cursor_nodes`),
so that a restarted poller goes back to that node instead of re-reading the swarm from another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bridge.session.poller import MemoryPollState, PollStateStore

__all__ = ["GroupStore", "Membership", "MemoryGroupStore", "RawGroupMessage"]


@dataclass(frozen=True)
class RawGroupMessage:
    """A message of the group swarm exactly as retrieved."""

    namespace: int
    hash: str
    timestamp: int
    expiry: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Membership:
    """One group we were invited to (member auth data) or promoted in (seed), §5.1, §7.3.

    ``accepted``: we accepted the invite and poll the group. ``removed``: kicked, left or
    destroyed; such a group is no longer polled.
    """

    group_id: str
    name: str
    auth_data: bytes = field(default=b"", repr=False)
    seed: bytes | None = field(default=None, repr=False)
    inviter: str = ""
    invite_timestamp: int = 0
    accepted: bool = False
    removed: bool = False


class GroupStore(PollStateStore, Protocol):
    """:class:`PollStateStore` (``account`` = group id) plus group bytes and memberships."""

    async def cursor_nodes(self, group: str) -> dict[str, int]:
        """Nodes (Ed25519 hex) holding a cursor of ``group``, each with a number that is
        larger for a node whose cursor moved later (e.g. the time of its last move, ms)."""
        ...

    async def add_raw(self, group: str, message: RawGroupMessage) -> None:
        """Keep a received keys/config message (ns 12-14)."""
        ...

    async def raw_messages(self, group: str) -> list[RawGroupMessage]:
        """Every kept message of ``group``, in the order received."""
        ...

    async def save_membership(self, membership: Membership) -> None:
        """Insert or replace the membership of ``membership.group_id``."""
        ...

    async def memberships(self) -> list[Membership]:
        """All memberships."""
        ...


class MemoryGroupStore(MemoryPollState):
    """An in-memory :class:`GroupStore`."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: dict[str, dict[str, RawGroupMessage]] = {}
        self.groups: dict[str, Membership] = {}
        # cursor_nodes comes from MemoryPollState (the group id is the account).

    async def add_raw(self, group: str, message: RawGroupMessage) -> None:
        """See :class:`GroupStore`."""
        self.raw.setdefault(group, {}).setdefault(message.hash, message)

    async def raw_messages(self, group: str) -> list[RawGroupMessage]:
        """See :class:`GroupStore`."""
        return list(self.raw.get(group, {}).values())

    async def save_membership(self, membership: Membership) -> None:
        """See :class:`GroupStore`."""
        self.groups[membership.group_id] = membership

    async def memberships(self) -> list[Membership]:
        """See :class:`GroupStore`."""
        return list(self.groups.values())

    def drop(self, groups: Sequence[str]) -> None:
        """Forget everything about ``groups`` (tests)."""
        for group in groups:
            self.raw.pop(group, None)
            self.groups.pop(group, None)
            self.node_moves.pop(group, None)
