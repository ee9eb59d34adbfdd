"""Neighbour outages during a two-way burst (issue #10; docs/architecture.md §4.7): the bridge
runs as its own process on PostgreSQL, with Synapse and the devnet, and 200 messages go each
way in a community portal and a direct-chat portal, and 100 (``COUNT // 2``, so the test takes
not much longer) each way in a group portal (a devnet group whose member Bob posts, and reads
what the Matrix user sent from the group's swarm), while one fault happens. After each:
nothing lost, nothing duplicated, order kept in every portal, and (except kill -9) the same
bridge process carried on. The tally table is printed (``pytest -s``) and written to
``tally.txt`` in the test's tmp dir and to ``$SMB_FAULT_TALLY`` when set.

Synapse loses, for the bridge, the events it held in memory when it stops (docs/architecture.md
§4.7, what is not covered yet): its Matrix users pause just before the stop until the bridge
has what they sent, then go on while it is down (``faultkit.synapse_down``).

The harness is tests/integration/faultkit.py; the Session-network faults live beside these.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.faultkit import (
    FaultKit,
    bridge_killed,
    postgres_down,
    running_kit,
    synapse_down,
)

COUNT = int(os.environ.get("SMB_FAULT_COUNT", "200"))


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[FaultKit]:
    async with running_kit(tmp_path) as kit:
        await kit.open_portals()
        yield kit


async def test_postgresql_stopped_20_s(kit: FaultKit) -> None:
    pid = kit.bridge_pid
    tally = await kit.run_burst("PostgreSQL stopped 20 s", postgres_down(20), count=COUNT)
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    kit.assert_not_restarted(pid)
    during = kit.readiness_between(tally.started, tally.cleared)
    assert False in during, "readiness never turned false while the database was down"
    assert await kit.is_ready(), "readiness did not come back"


async def test_synapse_stopped_30_s(kit: FaultKit) -> None:
    pid = kit.bridge_pid
    tally = await kit.run_burst("Synapse stopped 30 s", synapse_down(30), count=COUNT)
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    kit.assert_not_restarted(pid)
    assert await kit.is_ready()


async def test_kill_9_three_times(kit: FaultKit) -> None:
    seed = random.randrange(2**32)
    print(f"kill -9 moments drawn with seed {seed}")
    fault = bridge_killed(3, random.Random(seed))
    tally = await kit.run_burst(f"kill -9 x3 (seed {seed})", fault, count=COUNT)
    tally.report(kit.tally_path)
    assert tally.complete, tally.table() + "\n" + kit.bridge_log_tail(3000)
    tally.assert_clean()
    assert kit.bridge_starts == 4 and kit.bridge_pid is not None
