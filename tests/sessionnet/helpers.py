"""Test helpers: a running devnet, a client wired to it, accounts, waiting on conditions."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import nacl.signing

from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import RetryPolicy, SnodeClient
from bridge.session.snode.transport import SnodeTransport
from tests.sessionnet.net import Devnet
from tests.sessionnet.storage import StorageNode, SwarmInfo

#: Short delays so fault tests stay fast; still bounded and jittered.
FAST_POLICY = RetryPolicy(max_attempts=6, max_swarm_updates=3, base_delay=0.01, max_delay=0.05)


def new_signer() -> Ed25519Signer:
    """A fresh random 05 account."""
    return Ed25519Signer(nacl.signing.SigningKey.generate())


def signer_in(net: Devnet, swarm: SwarmInfo) -> Ed25519Signer:
    """A fresh account that the devnet's swarm rule puts in ``swarm``."""
    while True:
        s = new_signer()
        if net.swarm_for(s.session_id) is swarm:
            return s


def nodes_of(net: Devnet, account: str) -> list[StorageNode]:
    """The devnet nodes currently owning ``account``."""
    return list(net.swarm_for(account).nodes)


@asynccontextmanager
async def running_devnet(**kwargs: Any) -> AsyncIterator[Devnet]:
    """A started devnet (default 6 nodes, swarms of 3), stopped afterwards."""
    kwargs.setdefault("node_count", 6)
    kwargs.setdefault("swarm_size", 3)
    net = Devnet(**kwargs)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


@asynccontextmanager
async def devnet_client(
    net: Devnet,
    *,
    timeout: float = 2.0,
    policy: RetryPolicy = FAST_POLICY,
    pin: str | None = None,
) -> AsyncIterator[SnodeClient]:
    """A :class:`SnodeClient` bootstrapping from the devnet seed with its certificate pinned."""
    assert net.seed_cert is not None
    async with aiohttp.ClientSession() as session:
        transport = SnodeTransport(session, timeout=timeout)
        pool = NodePool(transport, [SeedNode(net.seed_url, pin or net.seed_cert.sha256_hex)])
        yield SnodeClient(pool, transport, policy=policy)


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, step: float = 0.02
) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
