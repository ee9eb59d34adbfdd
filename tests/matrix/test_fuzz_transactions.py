"""Fuzzing the appservice endpoint with generated hostile transactions (tests/matrix/fuzz.py).

100,000 transactions go through the real aiohttp app over HTTP into an in-memory sink that
checks every event it gets could be stored (fast enough for the unit set); 5,000 go through the
real durable inbox on SQLite and its pump (the PostgreSQL run is in
tests/integration/test_bad_input.py). Every answer must be the expected one: never a 500
except for an injected database failure (after which the transaction is sent again, as
Synapse does), every valid event among the junk is delivered exactly once, nothing else is,
and a valid transaction still goes through at the end.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bridge.matrix.appservice import BridgeAppService
from tests.matrix.endpoint import HS_TOKEN, message
from tests.matrix.fuzz import Fuzz
from tests.matrix.fuzz_run import (
    FAILURE_RATE,
    assert_storable,
    fuzz_durable_inbox,
    raw_clients,
    send_all,
)

FUZZ_COUNT = 100_000
INBOX_COUNT = 5_000


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # Hundreds of thousands of "Dropping event" lines (their one-per-event rule is tested in
    # test_hostile_transactions.py) would only slow the run down.
    logging.getLogger("bridge.matrix").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("bridge.matrix").setLevel(logging.NOTSET)


class CheckingSink:
    """Takes transactions like the durable inbox (dedup by id and body hash), checks every
    event, and fails now and then like a database that is briefly away."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seen: set[tuple[str, str]] = set()
        self.delivered: Counter[str] = Counter()
        self.injected = 0

    async def accept_transaction(
        self,
        txn_id: str,
        body_hash: str,
        events: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> bool:
        if self.rng.random() < FAILURE_RATE:
            # The ephemeral part of a transaction refused for a gap in the ids is stored on
            # its own; its failure is logged and the answer stays 503 (not a 500).
            if not body_hash.endswith(":ephemeral"):
                self.injected += 1
            raise ConnectionError("injected: the database is away")
        for value in [*events, *ephemeral]:
            assert isinstance(value, dict)
            assert_storable(value)
        if (txn_id, body_hash) in self.seen:
            return False
        self.seen.add((txn_id, body_hash))
        self.delivered.update(str(e["event_id"]) for e in events)
        return True


async def test_100k_hostile_transactions_through_the_endpoint() -> None:
    sink = CheckingSink(seed=1)
    az = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token=HS_TOKEN,
        bot_localpart="sessionbot",
        registration_id="session",
        sink=sink,
        max_body_size=8 * 1024 * 1024,
    )
    async with TestServer(az.app) as server, raw_clients(server.host, server.port) as put:
        expected, errors = await send_all(Fuzz(seed=1), FUZZ_COUNT, put)
        assert errors == sink.injected > 0  # every 500 was an injected database failure
        assert sink.delivered == expected  # each valid event once, no junk
        sink.rng = random.Random(0)  # 0.844...: no injected failure for the last one
        assert await put("after", json.dumps({"events": [message("$last")]}).encode()) == 200
        assert sink.delivered["$last"] == 1
    assert sum(expected.values()) > 50_000


async def test_hostile_transactions_through_the_sqlite_inbox(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await fuzz_durable_inbox(url, INBOX_COUNT)
