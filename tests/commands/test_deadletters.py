"""The admins' ``deadletters`` and ``retry``: what is listed, what retry answers for a known,
an unknown and a still-failing item, and where they answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.commands.deadletters import dead_letter_commands
from bridge.commands.permissions import Level
from bridge.commands.registry import CommandEvent, CommandRegistry
from bridge.core.portal.deadletters import DeadLetters, RetryFailed
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import DeadLetterPath, DeadLetterRecord
from bridge.db.repos.deadletters import DeadLetterRepo


@pytest.fixture
async def dead_letters(tmp_path: Path) -> AsyncIterator[DeadLetters]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield DeadLetters(DeadLetterRepo(db))
    await db.close()


async def run(dead_letters: DeadLetters, line: str, *, management: bool = True) -> list[str]:
    registry, replies = CommandRegistry(dead_letter_commands(dead_letters)), []

    async def reply(text: str) -> None:
        replies.append(text)

    name, *args = line.split()
    event = CommandEvent(
        "@admin:x", "!mgmt:x", name, tuple(args), " ".join(args), Level.ADMIN, management, reply
    )
    await registry.dispatch(event, "!session")
    return replies


async def test_list_and_retry(dead_letters: DeadLetters) -> None:
    assert await run(dead_letters, "deadletters") == ["No parked items: nothing failed for good."]
    taken: list[int] = []
    still_broken = {"on": True}

    async def requeue(record: DeadLetterRecord) -> None:
        if still_broken["on"] and record.what.startswith("poison"):
            raise ValueError("still cannot convert")
        taken.append(record.id)

    dead_letters.register(DeadLetterPath.MATRIX, requeue)
    one = await dead_letters.park(
        DeadLetterPath.MATRIX, "Matrix event $e1 (m.room.message) in !r:x", {}, "boom", attempts=3
    )
    two = await dead_letters.park(
        DeadLetterPath.MATRIX, "poison post", {}, ValueError("cannot convert"), attempts=3
    )
    (listing,) = await run(dead_letters, "deadletters")
    lines = listing.splitlines()
    assert lines[0].startswith("2 parked item(s)")
    assert lines[1].startswith(f"- **{one.id}** · matrix · Matrix event $e1")
    assert "3 tries" in lines[1] and lines[1].endswith("· boom")
    assert lines[2].endswith("· ValueError: cannot convert")

    assert await run(dead_letters, f"retry {one.id}") == [f"Retried parked item {one.id}."]
    assert taken == [one.id]
    (answer,) = await run(dead_letters, f"retry {two.id}")
    assert answer == (
        f"Could not retry parked item {two.id}: ValueError: still cannot convert; it stays parked."
    )
    (answer,) = await run(dead_letters, "retry 999")
    assert "there is no such parked item" in answer
    assert [r.id for r in await dead_letters.list()] == [two.id]

    still_broken["on"] = False
    assert await run(dead_letters, "retry all") == ["Retried 1 of 1 parked item(s)."]
    assert await dead_letters.list() == []


async def test_usage_and_where_they_answer(dead_letters: DeadLetters) -> None:
    for line in ("retry", "retry x", "retry 1 2", "retry -1"):
        (answer,) = await run(dead_letters, line)
        assert answer.startswith("Usage: `retry <id>`"), line
    (answer,) = await run(dead_letters, "deadletters", management=False)
    assert "answers only in your management room" in answer


async def test_an_item_whose_path_is_not_running_stays(dead_letters: DeadLetters) -> None:
    item = await dead_letters.park(DeadLetterPath.OUTBOX, "outbox row 1", {}, "x", attempts=1)
    with pytest.raises(RetryFailed, match="outbox path is not running"):
        await dead_letters.retry(item.id)
    assert [r.id for r in await dead_letters.list()] == [item.id]
