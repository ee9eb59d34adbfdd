"""Readiness (``/_matrix/mau/ready``): off until started, off while the database does not
answer or a supervised loop is down, on again once both are back (docs/architecture.md §4.7)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from bridge.backoff import Backoff
from bridge.core.portal.readiness import Readiness


class FakeDatabase:
    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> None:
        if not self.up:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_readiness_follows_the_database_and_the_loops() -> None:
    db, published = FakeDatabase(), []
    readiness = Readiness(
        db=cast(Any, db),
        publish=published.append,
        probe_interval=0.01,
        restart_backoff=Backoff(0.02),
        stable_after=0.05,
    )
    watch = readiness.supervisor.spawn("database-watch", readiness.watch_database)
    assert not readiness.ready  # not started yet
    readiness.set_started(True)
    assert readiness.ready and published == [True]

    db.up = False  # the database stops
    await wait_until(lambda: not readiness.ready)
    db.up = True
    await wait_until(lambda: readiness.ready)

    crashed = {"n": 0}

    async def outbox() -> None:
        crashed["n"] += 1
        if crashed["n"] == 1:
            raise RuntimeError("database error in claim_due")
        await asyncio.Event().wait()

    readiness.supervisor.spawn("outbox", outbox)
    await wait_until(lambda: not readiness.ready)
    await wait_until(lambda: readiness.ready)  # restarted and running for a while
    assert crashed["n"] == 2
    assert published == [True, False, True, False, True]

    readiness.set_started(False)  # stopping
    assert not readiness.ready and published[-1] is False
    await readiness.supervisor.cancel(watch)
    await readiness.supervisor.stop()
