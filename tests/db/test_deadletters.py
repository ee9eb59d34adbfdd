"""The dead-letter table and the repository changes its retries need: parking, listing and
taking items; a failed outbox row and a Matrix event put back; which database errors mean
"unavailable" (docs/architecture.md §4.7)."""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc

from bridge.db.errors import is_unavailable
from bridge.db.records import DeadLetterPath, OutboxStatus, PortalKind
from bridge.db.repos import Repositories
from tests.db.conftest import START_MS, FakeClock


async def test_park_list_take(repos: Repositories, clock: FakeClock) -> None:
    key = "https://x|lobby|" + "aa" * 32
    portal = await repos.portals.get_or_create(PortalKind.COMMUNITY, key)
    first = await repos.dead_letters.park(
        DeadLetterPath.COMMUNITY,
        "community post 7 in lobby",
        '{"id": 7}',
        "ValueError: bad",
        attempts=3,
        portal_id=portal.id,
    )
    clock.now += 1000
    second = await repos.dead_letters.park(
        DeadLetterPath.MATRIX, "Matrix event $e", '{"event": {}}', "x" * 5000, attempts=3
    )
    assert (first.path, first.portal_id) == (DeadLetterPath.COMMUNITY, portal.id)
    assert first.attempts == 3
    assert first.created_at == START_MS and second.created_at == START_MS + 1000
    assert len(second.error) == 2000  # capped
    assert [r.id for r in await repos.dead_letters.list()] == [first.id, second.id]
    assert await repos.dead_letters.count() == 2
    assert await repos.dead_letters.get(first.id) == first
    assert await repos.dead_letters.take(first.id) is True
    assert await repos.dead_letters.take(first.id) is False
    assert await repos.dead_letters.get(first.id) is None
    assert [r.id for r in await repos.dead_letters.list()] == [second.id]


async def test_a_failed_outbox_row_can_be_requeued_once(repos: Repositories) -> None:
    portal = await repos.portals.get_or_create(PortalKind.DIRECT, "05" + "aa" * 32)
    row = await repos.outbox.enqueue(portal.id, "dm_send", "{}")
    assert await repos.outbox.requeue_failed(row.id) is False  # pending, not failed
    assert len(await repos.outbox.claim_due(START_MS, 10)) == 1
    await repos.outbox.mark_failed(row.id, "refused")
    assert await repos.outbox.requeue_failed(row.id) is True
    again = await repos.outbox.get(row.id)
    assert again is not None
    assert (again.status, again.attempts) == (OutboxStatus.PENDING, 0)
    assert [r.id for r in await repos.outbox.claim_due(START_MS, 10)] == [row.id]
    assert await repos.outbox.requeue_failed(10_000) is False


async def test_a_matrix_event_is_stored_again_after_the_others(repos: Repositories) -> None:
    assert await repos.inbox.accept("t1", "h", [{"room_id": "!a", "event_id": "$1"}])
    await repos.inbox.requeue({"room_id": "!a", "event_id": "$0"}, "retry:5")
    pending = await repos.inbox.pending(0, 10)
    assert [p.event["event_id"] for p in pending] == ["$1", "$0"]
    assert pending[1].room_id == "!a"


def test_which_database_errors_are_unavailable() -> None:
    locked = exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert is_unavailable(locked)
    gone = exc.DBAPIError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
    assert is_unavailable(gone)
    assert is_unavailable(exc.TimeoutError("QueuePool limit reached"))
    duplicate = exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE failed"))
    assert not is_unavailable(duplicate)
    assert not is_unavailable(exc.DBAPIError("SELECT", {}, Exception("syntax")))
    assert not is_unavailable(ValueError("a bug"))
