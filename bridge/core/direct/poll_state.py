"""The bridge's :class:`bridge.session.poller.PollStateStore` for 1:1 swarms: each account's
cursors under poller ``snode:<account>`` and its seen hashes as ``seen:<account>:<hash>``,
cached and written as ``bridge/core/portal/swarm_cursors.py`` describes.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.core.portal.swarm_cursors import SwarmCursors
from bridge.db.repos.cursors import CursorRepo


class DbPollState:
    """The :class:`bridge.session.poller.PollStateStore` of the bridge (see module docs)."""

    def __init__(self, cursors: CursorRepo) -> None:
        self._cursors = SwarmCursors(
            cursors,
            poller=lambda account: f"snode:{account}",
            seen_key=lambda account, hash_: f"seen:{account}:{hash_}",
        )

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """The cursor of (node, account, namespace)."""
        return await self._cursors.cursor(node, account, namespace)

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """Move the cursor of (node, account, namespace): the database first, then memory."""
        await self._cursors.move(node, account, namespace, value)

    async def cursor_nodes(self, account: str) -> dict[str, int]:
        """Nodes holding a cursor of ``account``, each with the time its cursors last moved."""
        return await self._cursors.nodes(account)

    def forget(self, account: str) -> None:
        """Drop ``account``'s cached cursors (its client stopped); the database keeps them."""
        self._cursors.forget(account)

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for ``account``."""
        return await self._cursors.seen(account, hashes)

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """Record a committed hash (pruned with the other dedup markers)."""
        await self._cursors.mark_seen(account, hash_)
