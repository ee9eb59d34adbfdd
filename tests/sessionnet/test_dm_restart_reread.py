"""A restarted 1:1 inbox poller does not re-read the account's swarm (docs/session-protocol.md
§6.6).

Cursors are per (node, account, namespace). A poller sticks to one node of the swarm while it
runs (alone, or in the shared batches of :class:`SwarmPolling`); after a restart it must go back
to the node its stored cursors belong to, or it gets everything the swarm still holds (14 days
of messages) once more. The restart is simulated with a new :class:`SnodeClient` whose random
node order puts that node last (the common case, made deterministic), over the same poll state:
in memory, and the bridge's database-backed :class:`DbPollState`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, MutableSequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.core.direct.poll_state import DbPollState
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.session.poller import MemoryPollState, PolledMessage, Poller, PollEvent, PollStateStore
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import SnodeClient
from bridge.session.snode.transport import SnodeTransport
from bridge.session.swarm_polling import SwarmPolling
from tests.sessionnet.helpers import FAST_POLICY, devnet_client, new_signer, running_devnet
from tests.sessionnet.net import Devnet

MESSAGES = 200


@pytest.fixture(params=["memory", "sqlite"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PollStateStore]:
    if request.param == "memory":
        yield MemoryPollState()
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'dm.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    try:
        yield DbPollState(CursorRepo(db))
    finally:
        await db.close()


class _LastOf(random.Random):
    """Shuffles node lists so that the nodes in ``avoid`` come last (order otherwise kept)."""

    def __init__(self, avoid: set[str]) -> None:
        super().__init__(0)
        self.avoid = avoid

    def shuffle(self, x: MutableSequence[Any]) -> None:  # type: ignore[override]
        x[:] = sorted(x, key=lambda n: getattr(n, "pubkey_ed25519", "") in self.avoid)


def _retrieved(net: Devnet, account: str) -> int:
    return sum(n.retrieved[account] for n in net.nodes)


class _Consumer:
    """Polls one account (alone, or through shared polling) and acks every message."""

    def __init__(self, poller: Poller[bytes], polling: SwarmPolling | None) -> None:
        self.poller = poller
        self.polling = polling

    async def _once(self) -> list[PollEvent[bytes]]:
        if self.polling is None:
            return await self.poller.poll_once()
        return await self.polling.poll(self.poller)

    async def drain(self) -> list[str]:
        """Poll until no node says it has more; ack every message (a consumer that commits)."""
        got: list[str] = []
        for _ in range(100):
            for event in await self._once():
                assert isinstance(event, PolledMessage), event  # no gap either
                got.append(event.hash)
                await self.poller.ack(event)
            if not self.poller.more:
                return got
        raise AssertionError("poller never drained")


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
async def test_a_restarted_inbox_poller_reads_nothing_twice(
    state: PollStateStore, shared: bool
) -> None:
    async with running_devnet() as net, devnet_client(net) as snode:
        bob = new_signer()
        account = bob.session_id
        sent = [(await snode.store(account, f"m{i}".encode())).hash for i in range(MESSAGES)]

        first_polling = SwarmPolling(snode) if shared else None
        first = _Consumer(Poller(snode, bob, state, bytes), first_polling)
        assert sorted(await first.drain()) == sorted(sent)
        if first_polling is not None:
            await first_polling.close()
        read_first = _retrieved(net, account)
        assert read_first == MESSAGES  # every message read once
        used = {n.pubkey_ed25519 for n in net.nodes if n.retrieved[account]}
        assert len(used) == 1  # one node per swarm while running

        # Restart: a new client and poller over the same state; its random order avoids `used`.
        assert net.seed_cert is not None
        async with aiohttp.ClientSession() as http:
            transport = SnodeTransport(http, timeout=2.0)
            seeds = [SeedNode(net.seed_url, net.seed_cert.sha256_hex)]
            pool = NodePool(transport, seeds, rng=_LastOf(used))
            again_snode = SnodeClient(pool, transport, policy=FAST_POLICY)
            polling = SwarmPolling(again_snode) if shared else None
            try:
                again = _Consumer(Poller(again_snode, bob, state, bytes), polling)
                assert await again.drain() == []  # nothing new, nothing delivered twice
                reread = _retrieved(net, account) - read_first
                assert reread == 0, f"{reread} items re-read after a restart"
                # The poller still works: a later message arrives once.
                new = await again_snode.store(account, b"after restart")
                assert await again.drain() == [new.hash]
                assert _retrieved(net, account) - read_first == 1
            finally:
                if polling is not None:
                    await polling.close()
