"""The process-wide sent-timestamp clock (docs/session-protocol.md §2.11)."""

from __future__ import annotations

from typing import Any, cast

from bridge.session.sent_clock import SentClock
from bridge.session.snode.clock import NetworkClock
from bridge.session.snode.rpc import SnodeClient


def test_same_millisecond_gives_distinct_increasing_values() -> None:
    clock = SentClock(lambda: 1_000)
    assert [clock.next_ms() for _ in range(4)] == [1_000, 1_001, 1_002, 1_003]
    assert clock.last == 1_003


def test_follows_time_again_after_a_burst_and_never_goes_back() -> None:
    now = [5_000]
    clock = SentClock(lambda: now[0])
    assert [clock.next_ms(), clock.next_ms()] == [5_000, 5_001]
    now[0] = 9_000
    assert clock.next_ms() == 9_000
    now[0] = 4_000  # the clock was set back (or a resync moved the network offset)
    assert [clock.next_ms(), clock.next_ms()] == [9_001, 9_002]


def test_snode_client_sent_clock_follows_network_time() -> None:
    network = NetworkClock(local_time=lambda: 100.0)
    network.observe(250_000)  # the nodes are 150 s ahead of us
    snode = SnodeClient(cast(Any, None), cast(Any, None), clock=network)
    assert snode.sent_clock.next_ms() == 250_000
    assert snode.sent_clock.next_ms() == 250_001
