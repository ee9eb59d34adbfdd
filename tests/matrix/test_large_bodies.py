"""Large transaction bodies: the size limit holds however the body is sent, and at most
``LARGE_BODY_SLOTS`` large bodies are in memory at once while small ones pass freely (the
memory itself is measured by bench/bench_large_bodies.py, which prints; tests never time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.bodies import LARGE_BODY, LARGE_BODY_SLOTS
from tests.matrix.endpoint import AUTH, TXN_PATH, message


class GatedSink:
    """Records transactions; large ones wait at a gate, to see how many are held at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.accepted: list[tuple[str, int]] = []
        self.large_inside = 0
        self.most_large_inside = 0

    async def accept_transaction(
        self,
        txn_id: str,
        body_hash: str,
        events: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> bool:
        if txn_id.startswith("large"):
            self.large_inside += 1
            self.most_large_inside = max(self.most_large_inside, self.large_inside)
            try:
                await self.gate.wait()
            finally:
                self.large_inside -= 1
        self.accepted.append((txn_id, len(events)))
        return True


def appservice(sink: GatedSink, max_body_size: int) -> BridgeAppService:
    return BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token="hs-token-for-tests",
        bot_localpart="sessionbot",
        registration_id="session",
        sink=sink,
        max_body_size=max_body_size,
    )


def body_of(size: int, seed: str) -> bytes:
    """A valid transaction of at least ``size`` bytes."""
    count = size // 60_000 + 1
    events = [message(f"${seed}-{i}", body="x" * 60_000) for i in range(count)]
    return json.dumps({"events": events}).encode()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


async def test_bodies_over_the_limit_are_413_with_or_without_a_length() -> None:
    sink = GatedSink()
    big = body_of(3 * 1024 * 1024, "big")
    async with TestClient(TestServer(appservice(sink, 2 * 1024 * 1024).app)) as client:
        announced = await client.put(TXN_PATH.format("a"), data=big, headers=AUTH)
        assert announced.status == 413
        assert (await announced.json())["errcode"] == "M_TOO_LARGE"
        chunked = await client.put(TXN_PATH.format("b"), data=chunks(big), headers=AUTH)
        assert chunked.status == 413
        small = body_of(1024 * 1024, "small")  # 1 MiB, chunked: fine
        assert (await client.put(TXN_PATH.format("c"), data=chunks(small), headers=AUTH)).ok
    assert sink.accepted == [("c", 18)]


async def test_at_most_the_slots_of_large_bodies_are_handled_at_once() -> None:
    sink = GatedSink()
    az = appservice(sink, 8 * 1024 * 1024)
    large = [body_of(2 * LARGE_BODY, f"large{i}") for i in range(4)]
    async with TestClient(TestServer(az.app)) as client:

        async def put(txn_id: str, data: bytes) -> int:
            resp = await client.put(TXN_PATH.format(txn_id), data=data, headers=AUTH)
            resp.release()
            return resp.status

        sends = [asyncio.create_task(put(f"large{i}", b)) for i, b in enumerate(large)]
        async with asyncio.timeout(30):
            # The first large ones are inside (read and parsed), the others wait for a slot.
            while sink.large_inside < LARGE_BODY_SLOTS or az.bodies.waiting < 4 - LARGE_BODY_SLOTS:
                await asyncio.sleep(0.01)
        # A small transaction does not wait for them.
        assert await put("small", json.dumps({"events": [message("$s")]}).encode()) == 200
        assert sink.accepted == [("small", 1)]
        assert sink.large_inside == LARGE_BODY_SLOTS
        sink.gate.set()
        assert await asyncio.gather(*sends) == [200] * 4
    assert sink.most_large_inside == LARGE_BODY_SLOTS
    assert sorted(sink.accepted)[:4] == [(f"large{i}", 35) for i in range(4)]
