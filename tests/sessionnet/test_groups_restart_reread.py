"""A restarted group poller does not re-read the group swarm (docs/groups-v2.md §6.2).

Cursors are per (node, group, namespace). A poller sticks to one node of a swarm while it runs;
after a restart it must go back to the node its stored cursors belong to, or it gets everything
the swarm still holds (14 days of messages, 30 days of keys/configs) once more. The restart is
simulated with a new :class:`SnodeClient` whose random node order puts that node last — the
common case (2 nodes in 3 of a devnet swarm), made deterministic.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, MutableSequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from bridge.core.group.store import DbGroupStore
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.groups import GroupRepo
from bridge.session.groups.events import GroupMessageEvent
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.members import Member as MemberEntry
from bridge.session.groups.members import SendStatus
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import GroupStore, MemoryGroupStore
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import SnodeClient
from bridge.session.snode.transport import SnodeTransport
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.helpers import FAST_POLICY
from tests.sessionnet.net import Devnet

T = TypeVar("T")

MESSAGES = 200


@pytest.fixture
async def world() -> AsyncIterator[DmWorld]:
    async with dm_world() as w:
        yield w


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GroupStore]:
    if request.param == "memory":
        yield MemoryGroupStore()
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'groups.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    try:
        yield DbGroupStore("05" + "ab" * 32, GroupRepo(db), CursorRepo(db))
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


async def _drain(poller: GroupPoller) -> list[GroupMessageEvent]:
    """Poll until no node says it has more; ack every message (a consumer that commits)."""
    got: list[GroupMessageEvent] = []
    while True:
        for event in await poller.poll_once():
            if isinstance(event, GroupMessageEvent):
                got.append(event)
                await poller.ack(event)
        if not poller.more:
            return got


async def test_a_restarted_poller_reads_nothing_twice(world: DmWorld, store: GroupStore) -> None:
    member = Identity.generate()
    admin_dm = await world.client(start=False)
    admin = await DevnetGroupAdmin.create(world.snode, admin_dm, Identity.generate(), "g")
    admin.members[member.session_id] = MemberEntry(member.session_id, invite=SendStatus.SENT)
    await admin.push(rekey=True)
    auth_data = make_member_auth_data(admin.group.seed, member.session_id)
    signer = request_signer(member, admin.group_id, auth_data=auth_data)
    gid = admin.group_id.value
    sent = {(await admin.post(VisibleMessage(body=f"m{i}"))).hash for i in range(MESSAGES)}

    first = GroupPoller(world.snode, store)
    await first.add(GroupState(admin.group_id, member), signer)
    assert {e.hash for e in await _drain(first)} == sent
    read_first = _retrieved(world.net, gid)
    assert read_first >= MESSAGES  # messages + keys + configs, once
    used = {n.pubkey_ed25519 for n in world.net.swarm_for(gid).nodes if n.retrieved[gid]}
    assert len(used) == 1  # one node per swarm while running

    # Restart: a new client and poller over the same store; its random order avoids `used`.
    assert world.net.seed_cert is not None
    async with aiohttp.ClientSession() as http:
        transport = SnodeTransport(http, timeout=2.0)
        seeds = [SeedNode(world.net.seed_url, world.net.seed_cert.sha256_hex)]
        pool = NodePool(transport, seeds, rng=_LastOf(used))
        snode = SnodeClient(pool, transport, policy=FAST_POLICY)
        again = GroupPoller(snode, store)
        await again.add(GroupState(admin.group_id, member), signer)
        assert await _drain(again) == []  # nothing new, nothing delivered twice
        reread = _retrieved(world.net, gid) - read_first
        assert reread == 0, f"{reread} items re-read after a restart"
        # The poller still works: a new message arrives once.
        new = await admin.post(VisibleMessage(body="after restart"))
        assert [e.hash for e in await _drain(again)] == [new.hash]
        assert _retrieved(world.net, gid) - read_first == 1
