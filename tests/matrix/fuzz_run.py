"""Running fuzz cases (tests/matrix/fuzz.py) against an endpoint: a few workers over raw
keep-alive connections, the durable-inbox run shared by the SQLite and PostgreSQL tests."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from bridge.db.errors import is_unavailable
from tests.matrix.endpoint import HS_TOKEN, TXN_PATH, endpoint, message
from tests.matrix.fuzz import Case, Fuzz, RawHttp

WORKERS = 8
FAILURE_RATE = 0.01
# A 500 is answered again as a homeserver would; injected failures never come this often in a
# row, so a 500 after that many tries is one the homeserver would retry forever.
RETRIES = 20


def assert_storable(value: dict[str, Any]) -> None:
    """What PostgreSQL needs: encodable as UTF-8 (no lone surrogate), no NUL."""
    text = json.dumps(value, ensure_ascii=False)
    text.encode("utf-8")  # raises on a lone surrogate
    assert "\\u0000" not in text, text[:200]


Put = Callable[[str, bytes], Awaitable[int]]


@asynccontextmanager
async def raw_clients(host: str, port: int) -> AsyncIterator[Put]:
    """``put`` over a pool of :class:`RawHttp` connections, one per worker."""
    free = [RawHttp(host, port, HS_TOKEN) for _ in range(WORKERS)]
    clients = list(free)

    async def put(txn_id: str, body: bytes) -> int:
        client = free.pop()
        try:
            return await client.put(TXN_PATH.format(txn_id), body)
        finally:
            free.append(client)

    try:
        yield put
    finally:
        for client in clients:
            await client.close()


async def send_all(fuzz: Fuzz, count: int, put: Put) -> tuple[Counter[str], int]:
    """PUT ``count`` cases with a few workers; (valid ids expected, 500s seen). A case
    answered 500 or 503 is sent again until it gets another answer."""
    expected: Counter[str] = Counter()
    errors = 0
    left = iter(range(count))

    async def worker() -> None:
        nonlocal errors
        for _ in left:
            case: Case = fuzz.next()
            expected.update(case.valid_ids)
            status = await put(case.txn_id, case.body)
            for _ in range(RETRIES):
                if status not in (500, 503):
                    break
                # 503: it came after a gap in the ids and is refused once, so that the
                # homeserver sends the missing ones first (bridge/matrix/txn_gaps.py); a
                # homeserver sends every refused transaction again, as this does.
                errors += status == 500
                status = await put(case.txn_id, case.body)
            assert status == case.status, (case.txn_id, case.body[:300], status)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return expected, errors


async def fuzz_durable_inbox(database_url: str, count: int) -> None:
    """``count`` cases through the real inbox on ``database_url``, its pump delivering; every
    valid event is handed on exactly once (also shared with the PostgreSQL run)."""
    async with endpoint(database_url, pump=True) as ep:
        fail = random.Random(2)
        accept = ep.repos.inbox.accept
        away = 0

        async def flaky_accept(txn_id: str, body_hash: str, events: Any, **kw: Any) -> bool:
            nonlocal away
            if fail.random() < FAILURE_RATE:
                away += 1
                raise ConnectionError("injected: the database is away")
            try:
                return await accept(txn_id, body_hash, events, **kw)
            except Exception as e:
                # A real "database is away" (SQLite's write lock held past its busy timeout
                # on a loaded machine) is a 500 the homeserver retries, as it must be; any
                # other error is not counted, so its 500 fails the run.
                if is_unavailable(e):
                    away += 1
                raise

        ep.repos.inbox.accept = flaky_accept  # type: ignore[method-assign]
        server = ep.client.server
        async with raw_clients(server.host, server.port) as put:
            expected, errors = await send_all(Fuzz(seed=3, huge=False), count, put)
        assert errors == away  # every 500 was the database being away
        fail.seed(0)
        assert await ep.put("after", json.dumps({"events": [message("$last")]})) == 200
        expected["$last"] += 1
        await ep.settled()
        assert Counter(str(e["event_id"]) for e in ep.handled) == expected
        for event in ep.handled:
            assert_storable(event)
