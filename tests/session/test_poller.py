"""The swarm poller: explicit acks, per-node cursors, de-duplication, gaps (§6.6)."""

from __future__ import annotations

from bridge.session.errors import DecodeError
from bridge.session.poller import Gap, MemoryPollState, PolledMessage, Poller, stored_prefer
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.rpc import SnodeClient
from tests.sessionnet.helpers import devnet_client, new_signer, nodes_of, running_devnet


def raw(data: bytes) -> bytes:
    return data


def make(
    client: SnodeClient, signer: Ed25519Signer, state: MemoryPollState, **kw: object
) -> Poller[bytes]:
    return Poller(client, signer, state, raw, **kw)  # type: ignore[arg-type]


async def drain(poller: Poller[bytes], *, ack: bool = True) -> list[PolledMessage[bytes]]:
    """Poll until the nodes report nothing new; returns the messages (acked if asked)."""
    out: list[PolledMessage[bytes]] = []
    for _ in range(50):
        events = await poller.poll_once()
        msgs = [e for e in events if isinstance(e, PolledMessage)]
        for m in msgs:
            if ack:
                await poller.ack(m)
        out += msgs
        if not msgs and not poller.more:
            return out
    raise AssertionError("poller never drained")


async def test_messages_in_order_then_nothing_after_ack() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        for i in range(5):
            await client.store(bob.session_id, f"m{i}".encode())
        await client.store(bob.session_id, b"cfg", namespace=2, signer=bob)
        poller = make(client, bob, MemoryPollState(), namespaces=(0, 2))
        events = await poller.poll_once()
        assert [(e.namespace, e.body) for e in events if isinstance(e, PolledMessage)] == [
            (0, b"m0"),
            (0, b"m1"),
            (0, b"m2"),
            (0, b"m3"),
            (0, b"m4"),
            (2, b"cfg"),
        ]
        assert not any(isinstance(e, Gap) for e in events)
        # not acked yet: a second poll does not hand them out twice
        assert await poller.poll_once() == []
        for e in events:
            assert isinstance(e, PolledMessage)
            await poller.ack(e)
        await client.store(bob.session_id, b"m5")
        assert [m.body for m in await drain(poller)] == [b"m5"]


async def test_restart_mid_burst_loses_nothing_and_repeats_nothing() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        sent = [
            (await client.store(bob.session_id, f"burst {i}".encode())).hash for i in range(50)
        ]
        state = MemoryPollState()
        first = make(client, bob, state, max_count=7)
        committed: list[str] = []
        while len(committed) < 23:  # commit 23, hold 1 un-acked in flight, then "crash"
            for e in await first.poll_once():
                assert isinstance(e, PolledMessage)
                if len(committed) < 23:
                    await first.ack(e)
                    committed.append(e.hash)
        del first
        second = make(client, bob, state, max_count=7)
        rest = [m.hash for m in await drain(second)]
        assert committed + rest == sent
        assert not set(committed) & set(rest)


async def test_unacked_message_is_redelivered_after_restart() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        for i in range(3):
            await client.store(bob.session_id, f"r{i}".encode())
        state = MemoryPollState()
        first = make(client, bob, state)
        events = [e for e in await first.poll_once() if isinstance(e, PolledMessage)]
        await first.ack(events[0])
        await first.ack(events[2])  # r1 never committed: the cursor must stay before it
        second = make(client, bob, state)
        assert [m.body for m in await drain(second)] == [b"r1"]


async def test_switching_nodes_does_not_repeat() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        for i in range(4):
            await client.store(bob.session_id, f"n{i}".encode())
        poller = make(client, bob, MemoryPollState())
        assert len(await drain(poller)) == 4
        used = {m for m in nodes_of(net, bob.session_id) if m.stats[("retrieve", 200)]}
        for node in used:
            await net.node_down(node)
        await client.store(bob.session_id, b"n4")
        assert [m.body for m in await drain(poller)] == [b"n4"]


async def test_gap_reported_when_node_forgets_last_hash() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        hashes = [(await client.store(bob.session_id, f"g{i}".encode())).hash for i in range(3)]
        poller = make(client, bob, MemoryPollState())
        msgs = await drain(poller)
        node = next(n for n in net.nodes if n.pubkey_ed25519 == msgs[-1].node)
        node.db.delete(bob.session_id, [hashes[-1]])  # the node lost our last_hash
        await client.store(bob.session_id, b"after")
        events = await poller.poll_once()
        gaps = [e for e in events if isinstance(e, Gap)]
        assert gaps == [Gap(node.pubkey_ed25519, 0, hashes[-1])]
        assert [e.body for e in events if isinstance(e, PolledMessage)] == [b"after"]
        assert all(not isinstance(e, Gap) for e in await poller.poll_once())  # reported once


async def test_undecodable_message_is_dropped_and_polling_continues() -> None:
    def strict(data: bytes) -> str:
        if data.startswith(b"\xff"):
            raise DecodeError("not a message")
        return data.decode()

    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        for data in (b"ok1", b"\xffbad", b"ok2"):
            await client.store(bob.session_id, data)
        state = MemoryPollState()
        poller: Poller[str] = Poller(client, bob, state, strict)
        events = await poller.poll_once()
        assert [e.body for e in events if isinstance(e, PolledMessage)] == ["ok1", "ok2"]
        for e in events:
            assert isinstance(e, PolledMessage)
            await poller.ack(e)
        node = events[0].node
        assert state.cursors[(node, bob.session_id, 0)] == events[-1].hash


def test_stored_prefer_picks_the_node_holding_most_cursors_then_the_latest() -> None:
    a, b, c = (ServiceNode("127.0.0.1", 1000 + i, f"{i:064x}") for i in range(3))
    assert stored_prefer([]) is None
    assert stored_prefer([(), ()]) is None  # no cursor anywhere: any node will do
    assert stored_prefer([((a, 5), (b, 9))]) == b  # one account: where it moved last
    # Two accounts' cursors on a, one on b (moved later): a, which spares two re-reads.
    assert stored_prefer([((a, 5), (b, 9)), ((a, 3),)]) == a
    assert stored_prefer([((a, 5),), ((b, 7),), ((c, 6),)]) == b


async def test_memory_state_says_where_cursors_moved_last() -> None:
    state = MemoryPollState()
    assert await state.cursor_nodes("05aa") == {}
    await state.set_last_hash("n1", "05aa", 0, "h1")
    await state.set_last_hash("n2", "05aa", 0, "g1")
    moved = await state.cursor_nodes("05aa")
    assert set(moved) == {"n1", "n2"} and moved["n2"] > moved["n1"]
    await state.set_last_hash("n1", "05aa", 2, "h2")
    moved = await state.cursor_nodes("05aa")
    assert moved["n1"] > moved["n2"]
    assert await state.cursor_nodes("05bb") == {}
