"""GroupPoller scheduling against the fake swarm: per-group 421 re-routing (session-protocol
§6.14), the hourly expiry keep-alive (docs/groups-v2.md §3.6, §6.2), desktop's activity tiers and
the packing of polls and expires into batches of 20 (session-protocol §6.10)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.session.groups.events import GroupMessageEvent
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member_send import may_extend, request_signer
from bridge.session.groups.poll_plan import (
    DESKTOP_SCHEDULE,
    EVERY_CYCLE,
    PollSchedule,
    keepalive_hashes,
    pack,
)
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import MemoryGroupStore
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from tests.session.groups.test_group_poller import NODE, OTHER, FakeSwarm, Group

DAY = 86_400_000


class Clock:
    """The poller's scheduling clock, moved by hand."""

    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


def _bodies(events: Sequence[object]) -> list[str | None]:
    return [
        e.content.body
        for e in events
        if isinstance(e, GroupMessageEvent) and isinstance(e.content, VisibleMessage)
    ]


async def test_a_group_that_moved_swarm_is_rerouted_alone() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    stay, move = Group(member), Group(member)
    for g in (stay, move):
        swarm.put(g.id.value, 12, g.rekey())
    poller = GroupPoller(swarm, MemoryGroupStore(), schedule=EVERY_CYCLE)
    for g in (stay, move):
        await g.follow(poller)
    await poller.poll_once()
    assert len(swarm.calls[-1]) == 10  # both groups in one batch on NODE
    swarm.put(stay.id.value, 11, stay.message("still here", 1_700_000_000_001))
    swarm.put(move.id.value, 11, move.message("moved", 1_700_000_000_002))
    swarm.swarm_of[move.id.value] = OTHER  # move_account: NODE now answers 421 for it
    events = await poller.poll_once()
    assert _bodies(events) == ["still here"]  # the other group's results were used
    assert poller.more  # the moved group is polled again at once
    assert swarm.routes[move.id.value] == OTHER  # taken from the 421 body
    events = await poller.poll_once()
    assert _bodies(events) == ["moved"]
    assert swarm.batches[OTHER.pubkey_ed25519] == 1
    assert sorted(poller.group_ids) == sorted([stay.id.value, move.id.value])


async def test_expiry_is_extended_hourly_for_the_hashes_in_use() -> None:
    swarm, member, clock = FakeSwarm(), Identity.generate(), Clock()
    group = Group(member)
    keys_hash = swarm.put(group.id.value, 12, group.rekey())
    poller = GroupPoller(swarm, MemoryGroupStore(), schedule=EVERY_CYCLE, now_ms=clock)
    await group.follow(poller)
    await poller.poll_once()  # nothing known yet: no expire
    assert swarm.expired == []
    await poller.poll_once()
    assert swarm.expired == [(group.id.value, (keys_hash,))]
    assert swarm.calls[-1] == ["retrieve"] * 5 + ["expire"]  # rides in the group's batch
    clock.ms += 3_599_999
    await poller.poll_once()
    assert len(swarm.expired) == 1  # cooldown (desktop configTtlExtensionThrottle)
    clock.ms += 1
    await poller.poll_once()
    assert len(swarm.expired) == 2
    state = poller.state(group.id.value)
    assert state is not None and keepalive_hashes(state) == [keys_hash]


async def test_a_read_only_member_does_not_extend() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    group.auth = make_member_auth_data(group.pair.seed, member.session_id, write=False)
    swarm.put(group.id.value, 12, group.rekey())
    assert not may_extend(auth_data=group.auth)
    assert may_extend(seed=group.pair.seed)
    poller = GroupPoller(swarm, MemoryGroupStore(), schedule=EVERY_CYCLE)
    signer = request_signer(member, group.id, auth_data=group.auth)
    await poller.add(GroupState(group.id, member), signer, may_extend=False)
    for _ in range(3):
        await poller.poll_once()
    assert swarm.expired == []


async def test_quiet_groups_are_polled_less_often_like_desktop() -> None:
    swarm, member, clock = FakeSwarm(), Identity.generate(), Clock()
    active, medium, idle = Group(member), Group(member), Group(member)
    poller = GroupPoller(swarm, MemoryGroupStore(), schedule=DESKTOP_SCHEDULE, now_ms=clock)
    for g, quiet in ((active, 0), (medium, 3 * DAY), (idle, 10 * DAY)):
        signer = request_signer(member, g.id, auth_data=g.auth)
        await poller.add(GroupState(g.id, member), signer, active_ms=clock.ms - quiet)
    polled: list[int] = []
    for _ in range(25):  # 25 cycles of 5 s = 2 minutes
        before = len(swarm.calls)
        await poller.poll_once()
        polled.append(sum(len(c) for c in swarm.calls[before:]) // 5)
        clock.ms += 5_000
    # Cycle 0 polls all three; the medium group again after 60 s, the idle one after 120 s.
    assert polled[0] == 3 and polled[12] == 2 and polled[24] == 3
    assert sum(polled) == 25 + 3 + 2
    # A new message makes a quiet group active again (desktop activeAt).
    swarm.put(idle.id.value, 12, idle.rekey())
    swarm.put(idle.id.value, 11, idle.message("wake up", clock.ms))
    clock.ms += 120_000
    await poller.poll_once()
    before = len(swarm.calls)
    clock.ms += 5_000
    await poller.poll_once()
    assert sum(len(c) for c in swarm.calls[before:]) // 5 == 1 + 1  # active + the woken one


def test_schedule_tiers() -> None:
    s = PollSchedule()
    assert s.interval_ms(0, 2 * DAY) == 0
    assert s.interval_ms(0, 2 * DAY + 1) == 60_000
    assert s.interval_ms(0, 7 * DAY + 1) == 120_000
    assert EVERY_CYCLE.interval_ms(0, 100 * DAY) == 0


def test_packing_fills_batches_and_never_exceeds_twenty() -> None:
    for polls in range(0, 30):
        for expires in range(0, 30):
            batches = pack(list(range(polls)), list(range(expires)))
            assert all(0 < b.size <= 20 for b in batches)
            assert sum(len(b.polls) for b in batches) == polls
            assert sum(len(b.expires) for b in batches) == expires
            assert len(batches) == -(-(5 * polls + expires) // 20)  # ceil: optimal
    assert [(len(b.polls), len(b.expires)) for b in pack(list(range(5)), list(range(5)))] == [
        (4, 0),
        (1, 5),
    ]
    assert NODE != OTHER
