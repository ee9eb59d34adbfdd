"""The devnet's fault controls: the whole network down and back on the same ports with its
state, and a swarm whose accounts move to another swarm (421, §6.2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.errors import SwarmUnavailable
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.errors import CommunityUnreachable
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.helpers import devnet_client, new_signer, running_devnet, signer_in
from tests.sessionnet.net import Devnet, closest_swarm, swarm_space
from tests.sessionnet.storage import StorageNode, SwarmInfo


@dataclass
class World:
    net: Devnet
    servers: CommunityAndFiles
    http: aiohttp.ClientSession

    def community(self) -> tuple[CommunityClient, str]:
        url = f"{self.servers.community_url}/lobby?public_key={self.servers.community.pubkey_hex}"
        return CommunityClient.from_url(self.http, Identity.generate(), url, timeout=2.0)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    servers = CommunityAndFiles()
    async with (
        running_devnet(node_count=9, extensions=[servers]) as net,
        aiohttp.ClientSession() as http,
    ):
        yield World(net, servers, http)


async def answers(http: aiohttp.ClientSession, url: str, body: Any = None) -> int | None:
    """The HTTP status ``url`` answers with (a POST when ``body`` is given), None if refused."""
    try:
        if body is None:
            async with http.get(url, ssl=False) as resp:
                return resp.status
        async with http.post(url, data=json.dumps(body), ssl=False) as resp:
            return resp.status
    except aiohttp.ClientConnectionError:
        return None


def endpoints(world: World) -> list[tuple[str, Any]]:
    """One request to every server of the devnet: each node, the seed, community, files."""
    info = {"jsonrpc": "2.0", "method": "info", "params": {}}
    seed = {"jsonrpc": "2.0", "method": "get_n_service_nodes", "params": {}}
    return [
        *((n.url, info) for n in world.net.nodes),
        (world.net.seed_url, seed),
        (f"{world.servers.community_url}/capabilities", None),
        (f"{world.servers.file_server_url}/file/nothing", None),
    ]


async def test_network_down_refuses_everything_and_comes_back_with_its_state(
    world: World,
) -> None:
    bob = new_signer()
    async with devnet_client(world.net) as snode:
        await snode.store(bob.session_id, b"before the outage")
        poster, room = world.community()
        await poster.join(room)
        await poster.post(room, VisibleMessage(body="posted before"))
        ports = [n.port for n in world.net.nodes]

        await world.net.network_down()
        for url, body in endpoints(world):
            assert await answers(world.http, url, body) is None, url
        with pytest.raises(SwarmUnavailable):
            await snode.store(bob.session_id, b"during")
        with pytest.raises(CommunityUnreachable):
            await poster.recent(room)

        await world.net.network_up()
        assert [n.port for n in world.net.nodes] == ports
        statuses = [await answers(world.http, url, body) for url, body in endpoints(world)]
        assert statuses[:-1] == [200] * (len(statuses) - 1) and statuses[-1] == 404
        got = await snode.retrieve(bob)
        assert [m.data for m in got.messages] == [b"before the outage"]
        assert [m.content.body for m in await poster.recent(room)] == ["posted before"]


async def test_open_connections_do_not_survive_an_outage(world: World) -> None:
    node = world.net.nodes[0]
    info = {"jsonrpc": "2.0", "method": "info", "params": {}}
    capabilities = f"{world.servers.community_url}/capabilities"
    # One keep-alive connection per server, opened before the outage.
    connector = aiohttp.TCPConnector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        assert await answers(http, node.url, info) == 200
        assert await answers(http, capabilities) == 200
        await world.net.network_down()
        assert await answers(http, node.url, info) is None
        assert await answers(http, capabilities) is None
        await world.net.network_up()
        assert await answers(http, node.url, info) == 200
        assert await answers(http, capabilities) == 200


async def test_outage_lasts_the_given_time_and_can_spare_the_seeds(world: World) -> None:
    seed = {"jsonrpc": "2.0", "method": "get_n_service_nodes", "params": {}}
    info = {"jsonrpc": "2.0", "method": "info", "params": {}}
    outage = asyncio.create_task(world.net.outage(0.5, seeds=False))
    await asyncio.sleep(0.1)  # inside the outage
    assert await answers(world.http, world.net.seed_url, seed) == 200
    assert await answers(world.http, world.net.nodes[0].url, info) is None
    await outage
    assert await answers(world.http, world.net.nodes[0].url, info) == 200


async def test_pausing_only_the_community_server(world: World) -> None:
    await world.servers.pause(files=False)
    assert await answers(world.http, f"{world.servers.community_url}/capabilities") is None
    assert await answers(world.http, f"{world.servers.file_server_url}/file/x") == 404
    await world.servers.resume()
    assert await answers(world.http, f"{world.servers.community_url}/capabilities") == 200


def born_in(net: Devnet, swarm: SwarmInfo) -> Ed25519Signer:
    """A fresh account that the swarm rule puts in ``swarm`` (whether or not it moved)."""
    while True:
        signer = new_signer()
        if closest_swarm(swarm_space(signer.session_id), net.swarms) is swarm:
            return signer


async def rpc(http: aiohttp.ClientSession, node: StorageNode, method: str, params: Any) -> Any:
    payload = {"jsonrpc": "2.0", "method": method, "params": params}
    async with http.post(node.url, data=json.dumps(payload), ssl=False) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_moved_swarm_answers_421_and_its_accounts_keep_their_messages(
    world: World,
) -> None:
    net = world.net
    old = net.swarms[0]
    alice, bob = signer_in(net, old), signer_in(net, old)
    async with devnet_client(net) as snode:
        for signer in (alice, bob):
            for i in range(3):
                await snode.store(signer.session_id, f"{i}".encode())
        new = net.move_swarm(old)
        assert new is not old
        assert net.swarm_for(alice.session_id) is new
        assert net.swarm_for(born_in(net, old).session_id) is new  # later accounts too

        params = {"pubkey": bob.session_id}
        status, body = await rpc(world.http, old.nodes[1], "retrieve", params)
        assert status == 421
        assert body["swarm"] == format(new.swarm_id, "x")
        assert {s["port_https"] for s in body["snodes"]} == {n.port for n in new.nodes}
        for node in old.nodes:
            assert node.db.accounts() == []
        for node in new.nodes:
            assert [m.data for m in node.db.all(alice.session_id)] == [b"0", b"1", b"2"]

        # A client that still knows the old swarm follows the 421 and finds everything.
        await snode.store(bob.session_id, b"3")
        got = await snode.retrieve(bob)
        assert [m.data for m in got.messages] == [b"0", b"1", b"2", b"3"]
        assert sum(n.stats[("store", 421)] for n in old.nodes) >= 1


async def test_a_swarm_can_move_back(world: World) -> None:
    net = world.net
    first = net.swarms[0]
    alice = signer_in(net, first)
    async with devnet_client(net) as snode:
        await snode.store(alice.session_id, b"a")
        second = net.move_swarm(first, net.swarms[1])
        await snode.store(alice.session_id, b"b")
        # Accounts moved one by one follow their swarm too.
        carol = new_signer()
        net.move_account(carol.session_id, second)
        assert net.move_swarm(second, first) is first
        assert net.swarm_for(alice.session_id) is first
        assert net.swarm_for(carol.session_id) is first
        assert net.swarm_for(born_in(net, second).session_id) is first
        got = await snode.retrieve(alice)
        assert [m.data for m in got.messages] == [b"a", b"b"]
        with pytest.raises(ValueError):
            net.move_swarm(first, first)
