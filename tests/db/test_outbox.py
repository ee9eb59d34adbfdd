"""The outbox: claim, retry, give up, and recovery after a crash."""

from __future__ import annotations

import asyncio

import pytest

from bridge.db.engine import Database
from bridge.db.records import OutboxStatus, PortalKind, PortalRecord
from bridge.db.repos import Repositories
from tests.db.conftest import START_MS, FakeClock

NOW = START_MS


@pytest.fixture
async def portals(repos: Repositories) -> tuple[PortalRecord, PortalRecord]:
    a = await repos.portals.get_or_create(PortalKind.GROUP, "03" + "aa" * 32)
    b = await repos.portals.get_or_create(PortalKind.GROUP, "03" + "bb" * 32)
    return a, b


async def test_enqueue_and_claim(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, _ = portals
    row = await repos.outbox.enqueue(a.id, "text", '{"body": "hi"}', matrix_event_id="$e")
    assert row.status is OutboxStatus.PENDING
    assert (row.attempts, row.next_attempt_at, row.matrix_event_id) == (0, NOW, "$e")
    claimed = await repos.outbox.claim_due(NOW, 10)
    assert [c.id for c in claimed] == [row.id]
    assert claimed[0].status is OutboxStatus.SENDING
    assert claimed[0].attempts == 1
    assert claimed[0].payload == '{"body": "hi"}'
    assert await repos.outbox.claim_due(NOW, 10) == []  # already sending
    await repos.outbox.mark_done(row.id)
    done = await repos.outbox.get(row.id)
    assert done is not None and done.status is OutboxStatus.DONE


async def test_not_due_yet(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, _ = portals
    row = await repos.outbox.enqueue(a.id, "text", "{}", not_before=NOW + 100)
    assert await repos.outbox.claim_due(NOW + 99, 10) == []
    assert [c.id for c in await repos.outbox.claim_due(NOW + 100, 10)] == [row.id]


async def test_retry_then_give_up(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, _ = portals
    row = await repos.outbox.enqueue(a.id, "text", "{}")
    await repos.outbox.claim_due(NOW, 1)
    await repos.outbox.reschedule(row.id, NOW + 500, "snode timeout")
    retry = await repos.outbox.get(row.id)
    assert retry is not None
    assert (retry.status, retry.last_error, retry.next_attempt_at) == (
        OutboxStatus.PENDING,
        "snode timeout",
        NOW + 500,
    )
    assert await repos.outbox.claim_due(NOW + 499, 1) == []
    second = await repos.outbox.claim_due(NOW + 500, 1)
    assert [c.attempts for c in second] == [2]
    await repos.outbox.mark_failed(row.id, "swarm rejected the message")
    failed = await repos.outbox.get(row.id)
    assert failed is not None
    assert failed.status is OutboxStatus.FAILED
    assert failed.last_error == "swarm rejected the message"
    assert await repos.outbox.claim_due(NOW + 10_000, 10) == []


async def test_each_portal_stays_in_order(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, b = portals
    a1 = await repos.outbox.enqueue(a.id, "text", "1")
    a2 = await repos.outbox.enqueue(a.id, "text", "2")
    b1 = await repos.outbox.enqueue(b.id, "text", "1")
    assert [c.id for c in await repos.outbox.claim_due(NOW, 10)] == [a1.id, b1.id]
    # a1 is waiting for a retry: a2 must not overtake it; portal b is not held up.
    await repos.outbox.reschedule(a1.id, NOW + 1000, "busy")
    await repos.outbox.mark_done(b1.id)
    b2 = await repos.outbox.enqueue(b.id, "text", "2")
    assert [c.id for c in await repos.outbox.claim_due(NOW + 1, 10)] == [b2.id]
    assert [c.id for c in await repos.outbox.claim_due(NOW + 1000, 10)] == [a1.id]
    await repos.outbox.mark_failed(a1.id, "gave up")
    assert [c.id for c in await repos.outbox.claim_due(NOW + 1000, 10)] == [a2.id]


async def test_claim_respects_limit(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, b = portals
    first = await repos.outbox.enqueue(a.id, "text", "1")
    await repos.outbox.enqueue(b.id, "text", "1")
    assert [c.id for c in await repos.outbox.claim_due(NOW, 1)] == [first.id]


async def test_requeue_after_crash(
    db_url: str, repos: Repositories, portals: tuple[PortalRecord, PortalRecord], clock: FakeClock
) -> None:
    a, b = portals
    row_a = await repos.outbox.enqueue(a.id, "text", "{}")
    row_b = await repos.outbox.enqueue(b.id, "text", "{}")
    assert len(await repos.outbox.claim_due(NOW, 10)) == 2
    await repos.db.close()  # the bridge dies with both rows "sending"

    restarted_db = Database.from_url(db_url)
    try:
        clock.now = NOW + 60_000
        restarted = Repositories.create(restarted_db, clock)
        assert await restarted.outbox.claim_due(clock.now, 10) == []
        assert await restarted.outbox.requeue_stale() == 2
        again = await restarted.outbox.claim_due(clock.now, 10)
        assert sorted(c.id for c in again) == sorted([row_a.id, row_b.id])
        assert {c.attempts for c in again} == {2}
    finally:
        await restarted_db.close()


async def test_requeue_only_old_claims(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord], clock: FakeClock
) -> None:
    a, b = portals
    old = await repos.outbox.enqueue(a.id, "text", "{}")
    await repos.outbox.claim_due(NOW, 10)
    clock.now = NOW + 1000
    fresh = await repos.outbox.enqueue(b.id, "text", "{}")
    await repos.outbox.claim_due(clock.now, 10)
    assert await repos.outbox.requeue_stale(older_than=NOW + 500) == 1
    requeued, still = await repos.outbox.get(old.id), await repos.outbox.get(fresh.id)
    assert requeued is not None and requeued.status is OutboxStatus.PENDING
    assert still is not None and still.status is OutboxStatus.SENDING


async def test_concurrent_claimers_never_share_a_row(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    for index in range(6):
        portal = await repos.portals.get_or_create(PortalKind.DIRECT, f"me|peer{index}")
        await repos.outbox.enqueue(portal.id, "text", "{}")
    batches = await asyncio.gather(*(repos.outbox.claim_due(NOW, 2) for _ in range(5)))
    ids = [row.id for batch in batches for row in batch]
    assert len(ids) == len(set(ids)) == 6


async def test_mark_missing_row(repos: Repositories) -> None:
    with pytest.raises(LookupError):
        await repos.outbox.mark_done(999)


async def test_count_by_status(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord]
) -> None:
    a, b = portals
    await repos.outbox.enqueue(a.id, "text", "{}")
    done = await repos.outbox.enqueue(b.id, "text", "{}")
    await repos.outbox.mark_done(done.id)
    counts = await repos.outbox.count_by_status()
    assert counts == {
        OutboxStatus.PENDING: 1,
        OutboxStatus.SENDING: 0,
        OutboxStatus.DONE: 1,
        OutboxStatus.FAILED: 0,
    }


async def test_prune_done(
    repos: Repositories, portals: tuple[PortalRecord, PortalRecord], clock: FakeClock
) -> None:
    a, b = portals
    done = await repos.outbox.enqueue(a.id, "text", "{}")
    failed = await repos.outbox.enqueue(b.id, "text", "{}")
    await repos.outbox.mark_done(done.id)
    await repos.outbox.mark_failed(failed.id, "no")
    clock.now = NOW + 10
    recent = await repos.outbox.enqueue(a.id, "text", "{}")
    await repos.outbox.mark_done(recent.id)
    assert await repos.outbox.prune_done(older_than=NOW + 5) == 1
    assert await repos.outbox.get(done.id) is None
    assert await repos.outbox.get(failed.id) is not None
    assert await repos.outbox.get(recent.id) is not None


async def test_enqueue_once_per_dedup_key(repos: Repositories) -> None:
    portal = await repos.portals.get_or_create(PortalKind.COMMUNITY, "https://s|r|00")
    first = await repos.outbox.enqueue_once("mx:$e1", portal.id, "post", "{}")
    again = await repos.outbox.enqueue_once("mx:$e1", portal.id, "post", "{}")
    other = await repos.outbox.enqueue_once("mx:$e2", portal.id, "post", "{}")
    assert first is not None and other is not None and again is None
    assert await repos.outbox.count_by_status() == {
        OutboxStatus.PENDING: 2,
        OutboxStatus.SENDING: 0,
        OutboxStatus.DONE: 0,
        OutboxStatus.FAILED: 0,
    }
