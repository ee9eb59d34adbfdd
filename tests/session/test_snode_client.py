"""The storage-server client against the devnet: routing, retries, faults (§6.1-§6.3, §6.14)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.session.errors import InvalidInput
from bridge.session.snode import auth, calls
from bridge.session.snode.errors import (
    BootstrapError,
    SwarmUnavailable,
    Unauthorized,
    WrongSwarm,
)
from bridge.session.snode.results import Call
from bridge.session.snode.rpc import RetryPolicy
from tests.sessionnet.helpers import devnet_client, new_signer, nodes_of, running_devnet


async def test_bootstrap_pins_the_seed_certificate() -> None:
    async with running_devnet(node_count=3, swarm_size=3) as net:
        async with devnet_client(net) as client:
            nodes = await client.pool.refresh()
            assert {(n.ip, n.port) for n in nodes} == {(n.host, n.port) for n in net.nodes}
        async with devnet_client(net, pin="00" * 32) as client:
            with pytest.raises(BootstrapError):
                await client.pool.refresh()


async def test_store_from_one_account_to_another_and_retrieve() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        alice, bob = new_signer(), new_signer()
        sent = [await client.store(bob.session_id, f"hi {i}".encode()) for i in range(3)]
        got = await client.retrieve(bob)
        assert [m.hash for m in got.messages] == [s.hash for s in sent]
        assert [m.data for m in got.messages] == [b"hi 0", b"hi 1", b"hi 2"]
        assert client.clock.synced
        # the sender cannot read the recipient's inbox
        assert (await client.retrieve(alice)).messages == []
        more = await client.retrieve(bob, last_hash=sent[0].hash)
        assert [m.data for m in more.messages] == [b"hi 1", b"hi 2"]


async def test_signed_namespaces_and_batch_over_namespaces() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        with pytest.raises(InvalidInput):
            await client.store(bob.session_id, b"cfg", namespace=2)
        await client.store(bob.session_id, b"cfg", namespace=2, signer=bob, ttl_ms=30 * 86_400_000)
        await client.store(bob.session_id, b"msg")
        _, subs = await client.batch(
            bob.session_id, [calls.retrieve_call(bob, namespace=ns) for ns in (0, 2, 3)]
        )
        assert [s.code for s in subs] == [200, 200, 200]
        assert [len(s.body["messages"]) for s in subs] == [1, 1, 0]
        unsigned = Call("retrieve", lambda _n, _t: {"pubkey": bob.session_id})
        requests = [calls.retrieve_call(bob), unsigned, calls.retrieve_call(bob)]
        _, subs = await client.batch(bob.session_id, requests, sequence=True)
        assert [s.code for s in subs] == [200, 401]  # sequence stops at the first failure
        _, subs = await client.batch(bob.session_id, requests)
        assert [s.code for s in subs] == [200, 401, 200]
        with pytest.raises(Unauthorized):
            subs[1].raise_for_status()


async def test_delete_expire_get_expiries_through_client() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        a = await client.store(bob.session_id, b"a")
        b = await client.store(bob.session_id, b"b")
        exp = await client.get_expiries(bob, [a.hash, b.hash])
        assert set(exp) == {a.hash, b.hash}
        target = client.clock.now_ms() + 120_000
        swarm = await client.expire(bob, [a.hash], target, mode="shorten")
        assert all(r["updated"] == [a.hash] for r in swarm.values())
        swarm = await client.delete(bob, [b.hash])
        assert all(r["deleted"] == [b.hash] for r in swarm.values())
        assert [m.hash for m in (await client.retrieve(bob)).messages] == [a.hash]
        await client.delete_all(bob, "all")
        assert (await client.retrieve(bob)).messages == []
        eve = new_signer()
        forged = Call(
            "delete",
            lambda _n, _t: {
                **auth.sign_request(eve, "delete", None, None, messages=[a.hash]),
                "pubkey": bob.session_id,
            },
        )
        with pytest.raises(Unauthorized):  # signed by a key that does not own the account
            await client.call(bob.session_id, forged)


async def test_node_down_delivery_continues() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        await client.store(bob.session_id, b"before")
        first, second, third = nodes_of(net, bob.session_id)
        await net.node_down(first)
        await net.node_down(second)
        for i in range(5):  # every call must find the one node left
            await client.store(bob.session_id, f"during {i}".encode())
        got = await client.retrieve(bob)
        assert got.node.port == third.port
        assert [m.data for m in got.messages][:2] == [b"before", b"during 0"]
        await net.node_up(first)
        got = await client.retrieve(bob, prefer=got.node)
        assert len(got.messages) == 6


async def test_all_nodes_down_gives_up_after_bounded_attempts() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        await client.get_swarm(bob.session_id)
        for node in nodes_of(net, bob.session_id):
            await net.node_down(node)
        with pytest.raises(SwarmUnavailable):
            await client.store(bob.session_id, b"lost")


async def test_slow_node_times_out_and_next_node_answers() -> None:
    async with running_devnet() as net, devnet_client(net, timeout=0.3) as client:
        bob = new_signer()
        await client.store(bob.session_id, b"x")
        slow = nodes_of(net, bob.session_id)[0]
        net.set_slow(slow, 1.0)
        swarm = await client.get_swarm(bob.session_id)
        prefer = next(n for n in swarm if n.port == slow.port)
        got = await asyncio.wait_for(client.retrieve(bob, prefer=prefer), timeout=0.9)
        assert got.node.port != slow.port and [m.data for m in got.messages] == [b"x"]


async def test_421_is_followed_to_the_new_swarm() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        await client.store(bob.session_id, b"old home")
        old = net.swarm_for(bob.session_id)
        new = net.other_swarm(bob.session_id)
        net.move_account(bob.session_id, new)
        await client.store(bob.session_id, b"new home")  # cached swarm is stale → 421
        assert sum(n.stats[("store", 421)] for n in old.nodes) >= 1
        swarm = await client.get_swarm(bob.session_id)
        assert {n.port for n in swarm} == {n.port for n in new.nodes}
        got = await client.retrieve(bob)
        assert [m.data for m in got.messages] == [b"old home", b"new home"]


async def test_clock_skew_is_corrected_from_the_node() -> None:
    async with running_devnet() as net, devnet_client(net) as client:
        bob = new_signer()
        await client.store(bob.session_id, b"x")
        assert abs(client.clock.offset_ms) < 5_000
        net.set_skew(5 * 60_000)  # the whole network's clock jumps 5 minutes ahead
        got = await client.retrieve(bob)  # 406 → info → resync → retried once, re-signed
        assert [m.data for m in got.messages] == [b"x"]
        assert sum(n.stats[("retrieve", 406)] for n in net.nodes) == 1
        assert abs(client.clock.offset_ms - 5 * 60_000) < 5_000


async def test_retry_policy_bounds_swarm_updates() -> None:
    async with (
        running_devnet() as net,
        devnet_client(
            net, policy=RetryPolicy(max_swarm_updates=0, base_delay=0.01, max_delay=0.02)
        ) as client,
    ):
        bob = new_signer()
        await client.get_swarm(bob.session_id)
        net.move_account(bob.session_id, net.other_swarm(bob.session_id))
        with pytest.raises(WrongSwarm) as err:
            await client.store(bob.session_id, b"x")
        assert err.value.status == 421
