"""The database-backed :class:`~bridge.session.groups.store.GroupStore` of one Session identity.

Memberships and the received keys/config messages live in ``group_membership`` and
``group_raw_message`` (:class:`~bridge.db.repos.groups.GroupRepo`); poll cursors in
``poll_cursor`` (poller ``group:<identity>:<group>``) and seen hashes in ``inbound_dedup``
(:class:`~bridge.db.repos.cursors.CursorRepo`). Everything is keyed by the identity too: the
bot and a login in the same group poll it independently, each with its own cursors, so one
acknowledging a message never hides it from the other. Cursors are cached write-through (the
database first) as the 1:1 poll state's are (``bridge/core/portal/swarm_cursors.py``): a group's
cursors are read in one query at its first poll, and a failed write drops them from memory so
that the next poll reads them again; a restarted poller goes back to the node whose cursors
moved last (docs/groups-v2.md §6.2).

A membership's invite auth data and admin seed are secrets: :class:`SealedGroupRepo` encrypts
them with the bridge's secrets key before every write and decrypts them on read, as login seeds
are (bridge/core/secrets.py), so a database dump alone reveals neither.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bridge.core.portal.swarm_cursors import SwarmCursors
from bridge.core.secrets import SeedVault
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.groups import GroupMembershipRecord, GroupRawRecord, GroupRepo, GroupTx
from bridge.session.groups.store import Membership, RawGroupMessage

__all__ = ["DbGroupStore", "SealedGroupRepo"]


class SealedGroupRepo(GroupRepo):
    """The group repository with memberships' auth data and seed encrypted at rest (see the
    module docstring); empty auth data and a missing seed are kept as they are."""

    def __init__(self, db: Database, vault: SeedVault) -> None:
        super().__init__(db)
        self._vault = vault

    def _seal(self, record: GroupMembershipRecord) -> GroupMembershipRecord:
        return dataclasses.replace(
            record,
            auth_data=self._vault.encrypt(record.auth_data) if record.auth_data else b"",
            seed=None if record.seed is None else self._vault.encrypt(record.seed),
        )

    def _open(self, record: GroupMembershipRecord) -> GroupMembershipRecord:
        return dataclasses.replace(
            record,
            auth_data=self._vault.decrypt(record.auth_data) if record.auth_data else b"",
            seed=None if record.seed is None else self._vault.decrypt(record.seed),
        )

    async def save_membership(self, record: GroupMembershipRecord, *, tx: GroupTx = None) -> None:
        """Encrypt, then insert or replace."""
        await super().save_membership(self._seal(record), tx=tx)

    async def memberships(
        self, session_id: str | None = None, *, tx: GroupTx = None
    ) -> list[GroupMembershipRecord]:
        """Every membership of ``session_id`` (every identity when None), decrypted."""
        return [self._open(r) for r in await super().memberships(session_id, tx=tx)]

    async def membership(
        self, session_id: str, group_id: str, *, tx: GroupTx = None
    ) -> GroupMembershipRecord | None:
        """The membership of ``session_id`` in ``group_id``, decrypted, if any."""
        record = await super().membership(session_id, group_id, tx=tx)
        return None if record is None else self._open(record)


class DbGroupStore:
    """One identity's group store (see the module docstring)."""

    def __init__(self, session_id: str, groups: GroupRepo, cursors: CursorRepo) -> None:
        self._session_id = session_id
        self._groups = groups
        self._cursors = SwarmCursors(
            cursors,
            poller=lambda group: f"group:{session_id}:{group}",
            seen_key=lambda group, hash_: f"gseen:{session_id}:{group}:{hash_}",
        )

    # --- PollStateStore (account = group id) ---------------------------------------------

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """The cursor of (node, group, namespace)."""
        return await self._cursors.cursor(node, account, namespace)

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """Move the cursor: the database first, then memory."""
        await self._cursors.move(node, account, namespace, value)

    async def cursor_nodes(self, group: str) -> dict[str, int]:
        """Nodes holding a cursor of ``group``, each with the time its cursors last moved."""
        return await self._cursors.nodes(group)

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for the group."""
        return await self._cursors.seen(account, hashes)

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """Record a committed hash (pruned with the other dedup markers)."""
        await self._cursors.mark_seen(account, hash_)

    # --- group bytes and memberships -------------------------------------------------------

    async def add_raw(self, group: str, message: RawGroupMessage) -> None:
        """Keep a received keys/config message (once per hash)."""
        record = GroupRawRecord(
            message.namespace, message.hash, message.timestamp, message.expiry, message.data
        )
        await self._groups.add_raw(self._session_id, group, record)

    async def raw_messages(self, group: str) -> list[RawGroupMessage]:
        """Every kept message of ``group``, in the order received."""
        return [
            RawGroupMessage(r.namespace, r.hash, r.timestamp, r.expiry, r.data)
            for r in await self._groups.raw_messages(self._session_id, group)
        ]

    async def save_membership(self, membership: Membership) -> None:
        """Insert or replace the membership of ``membership.group_id``."""
        await self._groups.save_membership(
            GroupMembershipRecord(
                session_id=self._session_id,
                group_id=membership.group_id,
                name=membership.name,
                auth_data=membership.auth_data,
                seed=membership.seed,
                inviter=membership.inviter,
                invite_timestamp=membership.invite_timestamp,
                accepted=membership.accepted,
                removed=membership.removed,
            )
        )

    async def memberships(self) -> list[Membership]:
        """All memberships of this identity."""
        return [
            Membership(
                r.group_id,
                r.name,
                auth_data=r.auth_data,
                seed=r.seed,
                inviter=r.inviter,
                invite_timestamp=r.invite_timestamp,
                accepted=r.accepted,
                removed=r.removed,
            )
            for r in await self._groups.memberships(self._session_id)
        ]
