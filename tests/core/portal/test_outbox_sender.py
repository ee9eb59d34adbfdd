"""The outbox sender under the failure policy (docs/architecture.md §4.7), on a real SQLite
outbox: transient failures wait as long as it takes (and the sender is told once the wait
passes the threshold, and again when it went through); permanent ones are failed, parked and
told; a database error after the post is not permanent; a slow chat holds up no other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import exc

from bridge.backoff import Backoff
from bridge.core.portal import failures
from bridge.core.portal.outbox import (
    OutboxSender,
    PermanentFailure,
    TemporaryFailure,
    now_ms,
)
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import OutboxRecord, OutboxStatus, PortalKind
from bridge.db.repos import Repositories
from tests.tasks import cancel_and_wait


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[Repositories]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield Repositories.create(db)
    await db.close()


class Recorder:
    """The sender's hooks, recording what the Matrix sender would be told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, int, str]] = []
        self.parked: list[tuple[int, str, int]] = []

    async def failed(self, row: OutboxRecord, reason: str) -> None:
        self.told.append(("failed", row.id, reason))

    async def delayed(self, row: OutboxRecord, reason: str) -> None:
        self.told.append(("delayed", row.id, reason))

    async def recovered(self, row: OutboxRecord) -> None:
        self.told.append(("recovered", row.id, ""))

    async def park(self, row: OutboxRecord, reason: str, tries: int) -> None:
        self.parked.append((row.id, reason, tries))


def sender_for(
    repos: Repositories, deliver: object, hooks: Recorder, **kw: object
) -> OutboxSender:
    return OutboxSender(
        repos.outbox,
        {"x": deliver},  # type: ignore[dict-item]
        on_failed=hooks.failed,
        on_delayed=hooks.delayed,
        on_recovered=hooks.recovered,
        park=hooks.park,
        base_delay_ms=1,
        max_delay_ms=5,
        idle_poll_s=0.01,
        **kw,  # type: ignore[arg-type]
    )


async def status_of(repos: Repositories, row_id: int) -> OutboxStatus:
    row = await repos.outbox.get(row_id)
    assert row is not None
    return row.status


async def wait_for_status(repos: Repositories, row_id: int, status: OutboxStatus) -> None:
    async with asyncio.timeout(5):
        while await status_of(repos, row_id) != status:
            await asyncio.sleep(0.01)


async def portal_id(repos: Repositories, n: int = 1) -> int:
    return (await repos.portals.get_or_create(PortalKind.DIRECT, f"05{n:064x}")).id


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))


async def test_a_temporary_failure_waits_beyond_the_old_limit_and_tells_the_sender(
    repos: Repositories,
) -> None:
    # Session is unreachable for 12 tries (the old sender gave up after 5): the row is sent
    # once it is back, never failed; its sender is told once it waited past the threshold,
    # and told again when it went through.
    hooks, tries, sent = Recorder(), [], []

    async def deliver(row: OutboxRecord) -> None:
        tries.append(row.attempts)
        if len(tries) <= 12:
            await asyncio.sleep(0.01)
            raise TemporaryFailure("ClientConnectorError: cannot reach the swarm")
        sent.append(row.id)

    sender = sender_for(repos, deliver, hooks, delay_notice_after=0.05)
    row = await repos.outbox.enqueue(await portal_id(repos), "x", "{}", matrix_event_id="$e")
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, row.id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert sent == [row.id] and tries == list(range(1, 14))
    reason = "ClientConnectorError: cannot reach the swarm"
    assert hooks.told == [("delayed", row.id, reason), ("recovered", row.id, "")]
    assert hooks.parked == []


async def test_a_permanent_failure_is_failed_parked_and_told_and_the_chat_goes_on(
    repos: Repositories,
) -> None:
    hooks, sent = Recorder(), []

    async def deliver(row: OutboxRecord) -> None:
        if row.payload == '"poison"':
            raise PermanentFailure("the community server refused it: 403")
        sent.append(row.payload)

    sender = sender_for(repos, deliver, hooks)
    portal = await portal_id(repos)
    first = await repos.outbox.enqueue(portal, "x", '"poison"', matrix_event_id="$1")
    second = await repos.outbox.enqueue(portal, "x", '"fine"', matrix_event_id="$2")
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, second.id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert await status_of(repos, first.id) is OutboxStatus.FAILED
    assert sent == ['"fine"']
    reason = "the community server refused it: 403"
    assert hooks.parked == [(first.id, reason, 1)]
    assert hooks.told == [("failed", first.id, reason)]


async def test_a_database_error_after_the_post_is_not_permanent(repos: Repositories) -> None:
    # The post went out, then recording it failed because the database went away: the row
    # is tried again (the deliverers make that safe), never failed.
    hooks, posts = Recorder(), []

    async def deliver(row: OutboxRecord) -> None:
        posts.append(row.attempts)
        if len(posts) == 1:
            raise exc.DBAPIError("INSERT", {}, Exception("closed"), connection_invalidated=True)

    sender = sender_for(repos, deliver, hooks)
    row = await repos.outbox.enqueue(await portal_id(repos), "x", "{}")
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, row.id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert posts == [1, 2] and hooks.told == [] and hooks.parked == []


async def test_a_bug_is_tried_a_few_times_then_parked(repos: Repositories) -> None:
    hooks, tries = Recorder(), []

    async def deliver(row: OutboxRecord) -> None:
        tries.append(row.attempts)
        raise KeyError("op")

    sender = sender_for(repos, deliver, hooks)
    row = await repos.outbox.enqueue(await portal_id(repos), "x", "{}")
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, row.id, OutboxStatus.FAILED)
    await cancel_and_wait(task)
    assert tries == [1, 2, 3]
    assert hooks.parked == [(row.id, "internal error (KeyError)", 3)]


async def test_a_slow_chat_holds_up_no_other(repos: Repositories) -> None:
    hooks, sent = Recorder(), []
    release = asyncio.Event()

    async def deliver(row: OutboxRecord) -> None:
        if row.payload == '"big upload"':
            await release.wait()
        sent.append(row.payload)

    sender = sender_for(repos, deliver, hooks)
    slow, fast_chat = await portal_id(repos, 1), await portal_id(repos, 2)
    big = await repos.outbox.enqueue(slow, "x", '"big upload"')
    after_big = await repos.outbox.enqueue(slow, "x", '"after the upload"')
    rows = [await repos.outbox.enqueue(fast_chat, "x", f'"m{i}"') for i in range(3)]
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, rows[-1].id, OutboxStatus.DONE)
    assert sent == ['"m0"', '"m1"', '"m2"']  # in order, while the upload is still going
    assert await status_of(repos, after_big.id) is OutboxStatus.PENDING
    release.set()
    await wait_for_status(repos, after_big.id, OutboxStatus.DONE)
    assert sent[3:] == ['"big upload"', '"after the upload"']
    assert await status_of(repos, big.id) is OutboxStatus.DONE
    await cancel_and_wait(task)


async def test_a_database_error_outside_a_delivery_ends_the_run(repos: Repositories) -> None:
    # For the supervisor to start it again; the row in hand is sent again after requeue.
    hooks, posts = Recorder(), []

    async def deliver(row: OutboxRecord) -> None:
        posts.append(row.id)

    sender = sender_for(repos, deliver, hooks)
    row = await repos.outbox.enqueue(await portal_id(repos), "x", "{}")
    real_mark_done = repos.outbox.mark_done
    down = {"once": True}

    async def mark_done(outbox_id: int) -> None:
        if down.pop("once", False):
            raise ConnectionRefusedError("database down")
        await real_mark_done(outbox_id)

    repos.outbox.mark_done = mark_done  # type: ignore[method-assign]
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(sender.run(), 5)
    assert await status_of(repos, row.id) is OutboxStatus.SENDING
    task = asyncio.create_task(sender.run())  # what the supervisor does
    await wait_for_status(repos, row.id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert posts == [row.id, row.id]


async def test_a_chats_rows_go_on_in_one_run_and_wait_uncounted_behind_a_retry(
    repos: Repositories,
) -> None:
    # The task that delivered a row claims the rows after it; when one of them must wait,
    # the ones it claimed after that go back to pending with no attempt counted, and
    # everything is sent once, in order.
    hooks, sent, tries = Recorder(), [], {}

    async def deliver(row: OutboxRecord) -> None:
        tries[row.payload] = row.attempts
        if row.payload == '"m3"' and row.attempts == 1:
            raise TemporaryFailure("the server is busy")
        sent.append(row.payload)

    sender = sender_for(repos, deliver, hooks)
    portal = await portal_id(repos)
    rows = [await repos.outbox.enqueue(portal, "x", f'"m{i}"') for i in range(15)]
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, rows[-1].id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert sent == [f'"m{i}"' for i in range(15)]
    assert tries == {f'"m{i}"': 2 if i == 3 else 1 for i in range(15)}


async def test_claim_next_takes_only_the_due_rows_at_the_head_of_a_chat(
    repos: Repositories,
) -> None:
    portal, other = await portal_id(repos, 1), await portal_id(repos, 2)
    rows = [await repos.outbox.enqueue(portal, "x", "{}") for i in range(4)]
    await repos.outbox.enqueue(other, "x", "{}")
    now = rows[-1].next_attempt_at  # every row is due
    await repos.outbox.reschedule(rows[2].id, now + 60_000, "busy")
    claimed = await repos.outbox.claim_next(portal, now, 10)
    assert [r.id for r in claimed] == [rows[0].id, rows[1].id]  # not past the waiting one
    assert all(r.status is OutboxStatus.SENDING and r.attempts == 1 for r in claimed)
    assert await repos.outbox.claim_next(portal, now, 10) == []  # its head is now sending
    await repos.outbox.release([rows[1].id])
    released = await repos.outbox.get(rows[1].id)
    assert released is not None
    assert (released.status, released.attempts) == (OutboxStatus.PENDING, 0)


async def test_a_short_outage_is_not_told_even_to_a_row_that_waited_in_a_backlog(
    repos: Repositories,
) -> None:
    # The row was queued ten minutes before it was first tried (a long backlog), then met a
    # short outage: the threshold counts from its first failure, so nothing is said.
    hooks, tries = Recorder(), []

    async def deliver(row: OutboxRecord) -> None:
        tries.append(row.attempts)
        if len(tries) <= 3:
            raise TemporaryFailure("the Session network cannot be reached")

    def ten_minutes_later() -> int:
        return now_ms() + 600_000

    sender = sender_for(repos, deliver, hooks, delay_notice_after=60.0, clock=ten_minutes_later)
    row = await repos.outbox.enqueue(await portal_id(repos), "x", "{}", matrix_event_id="$e")
    task = asyncio.create_task(sender.run())
    await wait_for_status(repos, row.id, OutboxStatus.DONE)
    await cancel_and_wait(task)
    assert tries == [1, 2, 3, 4]
    assert hooks.told == []
