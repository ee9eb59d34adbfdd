"""Shared polling by swarm: batches per swarm, not per account (docs/session-protocol.md §6.6,
§6.10, §6.14), counted at the devnet's storage nodes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from bridge.session.messages import VisibleMessage
from bridge.session.poller import MemoryPollState, PolledMessage, Poller, PollEvent
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.errors import SnodeError
from bridge.session.snode.rpc import BATCH_MAX, SnodeClient
from bridge.session.swarm_polling import SwarmPolling
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.helpers import devnet_client, running_devnet, signer_in, wait_for
from tests.sessionnet.net import Devnet
from tests.sessionnet.storage import SwarmInfo


def batches(net: Devnet, swarm: SwarmInfo | None = None) -> int:
    """``batch`` requests the nodes (of ``swarm``) answered so far."""
    nodes = swarm.nodes if swarm is not None else net.nodes
    return sum(n.http_requests["batch"] for n in nodes)


def pollers(
    client: SnodeClient, signers: Sequence[Ed25519Signer], **kw: object
) -> list[Poller[bytes]]:
    return [
        Poller(client, s, MemoryPollState(), bytes, **kw)  # type: ignore[arg-type]
        for s in signers
    ]


async def cycle(
    polling: SwarmPolling, polled: Sequence[Poller[bytes]]
) -> list[list[PollEvent[bytes]]]:
    """Every account polls once, at the same time (as their loops do at a tick); acks all."""
    results = await asyncio.gather(*(polling.poll(p) for p in polled))
    for poller, events in zip(polled, results, strict=True):
        for event in events:
            if isinstance(event, PolledMessage):
                await poller.ack(event)
    return list(results)


def bodies(events: Sequence[PollEvent[bytes]]) -> list[bytes]:
    return [e.body for e in events if isinstance(e, PolledMessage)]


@pytest.mark.parametrize(("count", "namespaces"), [(25, (0,)), (13, (0, 2)), (1, (0,))])
async def test_accounts_of_one_swarm_share_batches(
    count: int, namespaces: tuple[int, ...]
) -> None:
    async with running_devnet(node_count=9, swarm_size=3) as net, devnet_client(net) as client:
        swarm = net.swarms[0]
        signers = [signer_in(net, swarm) for _ in range(count)]
        for i, s in enumerate(signers):
            await client.store(s.session_id, f"hello {i}".encode())
        polled = pollers(client, signers, namespaces=namespaces)
        polling = SwarmPolling(client)
        per_account = 1 + len(namespaces)  # the gap check, then one retrieve per namespace
        expected = math.ceil(count / (BATCH_MAX // per_account))
        first = await cycle(polling, polled)  # looks every swarm up, then polls
        assert [bodies(e) for e in first] == [[f"hello {i}".encode()] for i in range(count)]
        for _ in range(2):
            before = batches(net)
            again = await cycle(polling, polled)
            assert batches(net) - before == expected
            assert all(bodies(e) == [] for e in again)  # each message arrived once
        await polling.close()


async def test_swarms_are_polled_concurrently() -> None:
    async with running_devnet(node_count=9, swarm_size=3) as net, devnet_client(net) as client:
        slow, fast = net.swarms[0], net.swarms[1]
        slow_accounts = pollers(client, [signer_in(net, slow) for _ in range(3)])
        fast_accounts = pollers(client, [signer_in(net, fast) for _ in range(3)])
        for p in slow_accounts + fast_accounts:
            await client.store(p.account, b"hi")
            await client.get_swarm(p.account)
        polling = SwarmPolling(client)
        for node in slow.nodes:
            net.set_slow(node, 1.0)
        slow_polls = [asyncio.ensure_future(polling.poll(p)) for p in slow_accounts]
        fast_polls = [asyncio.ensure_future(polling.poll(p)) for p in fast_accounts]
        await wait_for(lambda: all(f.done() for f in fast_polls), timeout=5)
        assert not any(f.done() for f in slow_polls)  # the slow swarm held only its own
        assert [bodies(f.result()) for f in fast_polls] == [[b"hi"]] * 3
        assert [bodies(e) for e in await asyncio.gather(*slow_polls)] == [[b"hi"]] * 3
        await polling.close()


async def test_a_swarm_down_fails_only_its_accounts() -> None:
    async with running_devnet(node_count=9, swarm_size=3) as net, devnet_client(net) as client:
        down, up = net.swarms[0], net.swarms[1]
        lost = pollers(client, [signer_in(net, down) for _ in range(2)])
        fine = pollers(client, [signer_in(net, up) for _ in range(2)])
        for p in lost + fine:
            await client.store(p.account, b"m")
            await client.get_swarm(p.account)
        for node in down.nodes:
            await net.node_down(node)
        polling = SwarmPolling(client)
        results = await asyncio.gather(
            *(polling.poll(p) for p in lost + fine), return_exceptions=True
        )
        assert all(isinstance(r, SnodeError) for r in results[:2])
        assert [bodies(r) for r in results[2:]] == [[b"m"], [b"m"]]  # type: ignore[arg-type]
        await polling.close()


async def test_a_421_moves_only_that_account() -> None:
    async with running_devnet(node_count=9, swarm_size=3) as net, devnet_client(net) as client:
        home = net.swarms[0]
        signers = [signer_in(net, home) for _ in range(4)]
        for s in signers:
            for i in range(3):
                await client.store(s.session_id, f"{s.session_id[-4:]} {i}".encode())
        polled = pollers(client, signers)
        polling = SwarmPolling(client)
        for s in signers:
            await client.get_swarm(s.session_id)
        mover = polled[0]
        elsewhere = net.other_swarm(mover.account)
        net.move_account(mover.account, elsewhere)
        results = await cycle(polling, polled)
        assert results[0] == [] and mover.more  # told to poll again at once
        for s, events in zip(signers[1:], results[1:], strict=True):
            assert bodies(events) == [f"{s.session_id[-4:]} {i}".encode() for i in range(3)]
        new_nodes = {n.pubkey_ed25519 for n in elsewhere.nodes}
        home_nodes = {n.pubkey_ed25519 for n in home.nodes}
        cached = client.pool.cached_swarm
        assert {n.pubkey_ed25519 for n in cached(mover.account) or []} == new_nodes
        for s in signers[1:]:
            assert {n.pubkey_ed25519 for n in cached(s.session_id) or []} == home_nodes
        before_home, before_new = batches(net, home), batches(net, elsewhere)
        results = await cycle(polling, polled)
        tag = mover.account[-4:]
        assert bodies(results[0]) == [f"{tag} {i}".encode() for i in range(3)]
        assert all(bodies(e) == [] for e in results[1:])
        assert batches(net, home) - before_home == 1  # the three who stayed
        assert batches(net, elsewhere) - before_new == 1  # the mover, in its new swarm
        await polling.close()


async def test_clients_on_shared_polling_get_every_message_once_in_order() -> None:
    async with dm_world(node_count=9, swarm_size=3) as world:
        polling = SwarmPolling(world.snode)
        inboxes = [Inbox() for _ in range(12)]
        receivers = [
            await world.client(inbox=inbox, polling=polling, poll_interval=0.2)
            for inbox in inboxes
        ]
        sender = await world.client(start=False)
        texts = [f"note {i}" for i in range(5)]
        for text in texts:
            for receiver in receivers:
                await sender.send_text(receiver.session_id, text)
        for inbox in inboxes:
            await inbox.wait_count(len(texts), VisibleMessage, timeout=20)
        swarms = {world.net.swarm_for(r.session_id.value).swarm_id for r in receivers}
        before = batches(world.net)
        for receiver in receivers:  # a few more cycles: nothing arrives twice
            receiver.poll_now()
        await wait_for(lambda: batches(world.net) - before >= len(swarms), timeout=5)
        for inbox in inboxes:
            assert inbox.bodies() == texts
        for receiver in receivers:
            await receiver.stop(timeout=2)
        await polling.close()


class BrokenState(MemoryPollState):
    """A poll-state store whose database is down."""

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        raise ConnectionRefusedError("database down")


async def test_a_failing_state_store_fails_only_its_account() -> None:
    async with running_devnet(node_count=9, swarm_size=3) as net, devnet_client(net) as client:
        swarm = net.swarms[0]
        signers = [signer_in(net, swarm) for _ in range(3)]
        for s in signers:
            await client.store(s.session_id, b"m")
        broken: Poller[bytes] = Poller(client, signers[0], BrokenState(), bytes)
        fine = pollers(client, signers[1:])
        polling = SwarmPolling(client)
        results = await asyncio.gather(
            *(polling.poll(p) for p in [broken, *fine]), return_exceptions=True
        )
        assert isinstance(results[0], ConnectionRefusedError)
        assert [bodies(r) for r in results[1:]] == [[b"m"], [b"m"]]  # type: ignore[arg-type]
        await polling.close()


async def test_polls_after_close_are_refused() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        polling = SwarmPolling(client)
        await polling.close()
        with pytest.raises(SnodeError):
            await polling.poll(pollers(client, [signer_in(net, net.swarms[0])])[0])
