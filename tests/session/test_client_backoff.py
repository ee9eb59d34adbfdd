"""While the Session network cannot be reached, a client polls less and less often and logs
only the 1st, 2nd, 4th, 8th... failure in a row, instead of every few seconds forever."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from bridge.session.client import MAX_BACKOFF_S, SessionClient
from bridge.session.keys import Identity
from bridge.session.poller import MemoryPollState
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import SnodeClient
from bridge.session.snode.transport import SnodeTransport


async def test_polls_back_off_and_log_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.session.dm_inbox")
    async with aiohttp.ClientSession() as http:
        transport = SnodeTransport(http, timeout=1)
        # A loopback port nothing listens on: every bootstrap fails at once.
        pool = NodePool(transport, [SeedNode("http://127.0.0.1:9/json_rpc")])
        client = SessionClient(
            Identity.generate(), SnodeClient(pool, transport), MemoryPollState(), poll_interval=2
        )
        waits = []
        poller = client._inbox._new_poller()
        for _ in range(12):
            await client._inbox._poll_and_deliver(poller)
            waits.append(client._inbox._next_wait())
    assert waits[:4] == [4.0, 8.0, 16.0, 32.0]
    assert waits[-1] == MAX_BACKOFF_S
    failures = [r.args[1] for r in caplog.records if "poll failed" in r.msg]  # type: ignore[index]
    assert failures == [1, 2, 4, 8]
