"""The counts in the room topic and the trend since last week (docs/migration.md §3): the pure
parts, then :class:`MigrationStatus` and the hourly :class:`CountsRefresher` over a real
(SQLite) kv table with a fake homeserver, fake people and a fake clock (no waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from mautrix.errors import MForbidden, MNotFound
from mautrix.types import EventType, RoomTopicStateEventContent

from bridge.core.counts_refresh import CountsRefresher
from bridge.core.migration_trend import (
    DAY_MS,
    WEEK_MS,
    Sample,
    change_text,
    record,
    total_text,
    week_ago,
)
from bridge.core.moved import MIGRATION_STATE, MigrationStatus
from bridge.core.topic_counts import base_topic, counts_line, with_counts
from bridge.db.engine import Database
from bridge.db.models import Base
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import IdentityKind

HOUR_MS = 3_600_000
START = 1_790_000_000_000
TOM, UMA = "05" + "70" * 32, "05" + "75" * 32


def counts(moved: int, on_session: int, unknown: int = 0) -> dict[str, int]:
    return {"moved": moved, "on_session": on_session, "unknown": unknown}


# --- the topic line (pure) --------------------------------------------------------------------


def test_the_counts_line_is_appended_and_replaced_never_doubled() -> None:
    assert counts_line(counts(5, 6, 1)) == "Moved to Matrix: 5 of 12 people"
    assert with_counts("", counts(1, 2)) == "Moved to Matrix: 1 of 3 people"
    described = with_counts("Rowing on Saturdays", counts(1, 2))
    assert described == "Rowing on Saturdays\n\nMoved to Matrix: 1 of 3 people"
    again = with_counts(described, counts(2, 1))
    assert again == "Rowing on Saturdays\n\nMoved to Matrix: 2 of 3 people"
    assert base_topic(again) == "Rowing on Saturdays"
    assert with_counts(again, None) == "Rowing on Saturdays"
    # A description that mentions Matrix in its own words is left alone.
    own = "Moved to Matrix: see the pinned message"
    assert base_topic(own) == own
    # The group's disappearing setting line stays above the counts.
    two = "Rowing\n\nMessages disappear 1 day after they are sent."
    assert with_counts(two, counts(0, 4)).startswith(two + "\n\nMoved to Matrix")


# --- the weekly samples (pure) ----------------------------------------------------------------


def test_hourly_counts_over_three_weeks_keep_a_week_old_sample() -> None:
    samples: list[Sample] = []
    now = START
    for hour in range(21 * 24):
        now = START + hour * HOUR_MS
        samples = record(samples, counts(hour // 24, 30 - hour // 24), now)
        base = week_ago(samples, now)
        if hour < 7 * 24:
            assert base is None  # not a week of counts yet
        else:
            assert base is not None
            assert WEEK_MS <= now - base.at < WEEK_MS + DAY_MS  # about a week ago
        assert len(samples) <= 9  # a day's sample each, a week and a bit
    assert base is not None
    assert change_text(counts(20, 10), base) == (
        f"since {base_day(base)}: +7 moved, -7 on Session"
    )


def base_day(sample: Sample) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(sample.at / 1000, tz=datetime.UTC).strftime("%Y-%m-%d")


def test_a_bridge_down_for_weeks_compares_with_the_last_count_it_has() -> None:
    samples = record([], counts(1, 9), START)
    later = START + 30 * DAY_MS
    samples = record(samples, counts(6, 4), later)
    base = week_ago(samples, later)
    assert base is not None and base.at == START
    assert "+5 moved, -5 on Session" in change_text(counts(6, 4), base)
    assert change_text(counts(6, 4), None) == "no count from a week ago yet"
    assert total_text([]) == "Since last week: no portal has a count from a week ago yet."
    two = [(counts(6, 4), base), (counts(3, 0), Sample(START, 1, 1, 0))]
    assert total_text(two) == (
        "Since last week: +7 moved, -6 on Session (over the 2 portals counted a week ago)."
    )


# --- MigrationStatus and the refresher on fakes -----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


class FakeBot:
    """A homeserver of rooms with members, topics and state, recording what is sent."""

    mxid = "@bot:hs"

    def __init__(self) -> None:
        self.members: dict[str, list[str]] = {}
        self.topics: dict[str, str] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.topic_writes: list[tuple[str, str]] = []
        self.state_writes = 0
        self.forbidden: set[str] = set()

    async def get_joined_members(self, room: str) -> list[str]:
        return ["@bot:hs", *self.members[room]]

    async def send_state_event(
        self, room: str, event_type: EventType, content: dict[str, Any], state_key: str = ""
    ) -> None:
        assert event_type == MIGRATION_STATE and state_key == ""
        self.state_writes += 1
        self.state[room] = dict(content)

    async def get_state_event(self, room: str, event_type: EventType) -> Any:
        if event_type == EventType.ROOM_TOPIC:
            if room not in self.topics:
                raise MNotFound(404, "no topic")
            return RoomTopicStateEventContent(topic=self.topics[room])
        if room not in self.state:
            raise MNotFound(404, "no state")
        return _Content(self.state[room])

    async def set_room_topic(self, room: str, topic: str) -> None:
        if room in self.forbidden:
            raise MForbidden(403, "not allowed")
        self.topic_writes.append((room, topic))
        self.topics[room] = topic


class _Content:
    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def serialize(self) -> dict[str, Any]:
        return dict(self._raw)


class FakeLinks:
    def __init__(self) -> None:
        self.written: dict[int, dict[str, int]] = {}

    async def identities(self) -> list[Any]:
        return []

    async def last_written(self, portal_id: int) -> dict[str, int]:
        return self.written.get(portal_id, {})

    async def counts_by_kind(self) -> dict[IdentityKind, int]:
        return dict.fromkeys(IdentityKind, 0)


class FakeGhosts:
    def session_id_for(self, mxid: str) -> str | None:
        return mxid.removeprefix("@session_").split(":")[0] if "@session_" in mxid else None


class FakeLinked:
    def owner(self, sid: str, key: bytes | None) -> str | None:
        return None


class FakePortals:
    def __init__(self, portals: list[PortalRecord]) -> None:
        self.portals = portals

    async def list_active(self) -> list[PortalRecord]:
        return list(self.portals)


def portal(pid: int, kind: PortalKind) -> PortalRecord:
    return PortalRecord(
        id=pid,
        kind=kind,
        session_key=f"key{pid}",
        mxid=f"!room{pid}:hs",
        name=f"Room {pid}",
        topic=None,
        avatar_mxc=None,
        avatar_hash=None,
        relay_enabled=True,
        relay_login_id=None,
        encrypted=False,
        created_at=0,
        unbridged_at=None,
    )


@pytest.fixture
async def kv(tmp_path: Path) -> AsyncIterator[KVRepo]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'kv.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield KVRepo(database)
    finally:
        await database.close()


class World:
    def __init__(self, kv: KVRepo, *, topic_counts: bool) -> None:
        self.kv = kv
        self.clock = Clock()
        self.bot = FakeBot()
        self.links = FakeLinks()
        self.group = portal(1, PortalKind.GROUP)
        self.direct = portal(2, PortalKind.DIRECT)
        self.portals = FakePortals([self.group, self.direct])
        for p in self.portals.portals:
            self.bot.members[str(p.mxid)] = ["@alice:hs"]
        self.status = self.make_status(topic_counts)

    def make_status(self, topic_counts: bool) -> MigrationStatus:
        return MigrationStatus(
            links=cast(Any, self.links),
            portals=cast(Any, self.portals),
            ghosts=cast(Any, FakeGhosts()),
            linked=cast(Any, FakeLinked()),
            bot=cast(Any, self.bot),
            server_key_of=lambda p: None,
            deadline="",
            kv=self.kv,
            topic_counts=topic_counts,
            clock=self.clock,
        )

    def tom_writes_and_uma_joins(self) -> None:
        self.links.written[1] = {TOM: self.clock.now}
        self.bot.members["!room1:hs"].append(f"@session_{UMA}:hs")


async def test_the_topic_follows_the_counts_and_the_info_is_left_alone(kv: KVRepo) -> None:
    w = World(kv, topic_counts=True)
    room = "!room1:hs"
    w.bot.topics[room] = "Rowing on Saturdays"  # set by the group's Info
    refresher = CountsRefresher(w.status, cast(Any, w.portals))
    assert await refresher.tick() == 1  # the direct chat is not counted
    assert w.bot.topics[room] == "Rowing on Saturdays\n\nMoved to Matrix: 1 of 1 people"
    assert "!room2:hs" not in w.bot.topics
    assert w.bot.state[room]["moved"] == 1

    # Nothing changed: nothing is sent.
    writes, states = len(w.bot.topic_writes), w.bot.state_writes
    await refresher.tick()
    assert (len(w.bot.topic_writes), w.bot.state_writes) == (writes, states)

    # The counts change: the line is replaced, the state follows.
    w.tom_writes_and_uma_joins()
    await refresher.tick()
    assert w.bot.topics[room] == "Rowing on Saturdays\n\nMoved to Matrix: 1 of 3 people"
    assert (w.bot.state[room]["on_session"], w.bot.state[room]["unknown"]) == (1, 1)

    # The group's Info sets a new description (the line is gone): it is appended again.
    w.bot.topics[room] = "Rowing on Sundays now"
    await refresher.tick()
    assert w.bot.topics[room] == "Rowing on Sundays now\n\nMoved to Matrix: 1 of 3 people"

    # `who` writes the state event every time (its updated_at), the topic only if needed.
    writes, states = len(w.bot.topic_writes), w.bot.state_writes
    w.clock.now += HOUR_MS
    await w.status.who(w.group)
    assert w.bot.state_writes == states + 1 and w.bot.state[room]["updated_at"] == w.clock.now
    assert len(w.bot.topic_writes) == writes

    # Turned off: the line is removed once, then the topic is not even read.
    off = w.make_status(topic_counts=False)
    await CountsRefresher(off, cast(Any, w.portals)).tick()
    assert w.bot.topics[room] == "Rowing on Sundays now"
    writes = len(w.bot.topic_writes)
    w.bot.topics[room] = "Rowing on Sundays now\n\nMoved to Matrix: 9 of 9 people"  # not ours
    await CountsRefresher(off, cast(Any, w.portals)).tick()
    assert len(w.bot.topic_writes) == writes


async def test_off_by_default_and_a_forbidden_topic_is_only_logged(kv: KVRepo) -> None:
    w = World(kv, topic_counts=False)
    await CountsRefresher(w.status, cast(Any, w.portals)).tick()
    assert w.bot.topic_writes == [] and w.bot.state["!room1:hs"]["moved"] == 1

    on = World(kv, topic_counts=True)
    on.bot.forbidden.add("!room1:hs")
    assert await CountsRefresher(on.status, cast(Any, on.portals)).tick() == 1
    assert on.bot.topic_writes == [] and on.bot.state["!room1:hs"]["moved"] == 1


async def test_a_restart_does_not_rewrite_unchanged_counts(kv: KVRepo) -> None:
    w = World(kv, topic_counts=False)
    await CountsRefresher(w.status, cast(Any, w.portals)).tick()
    assert w.bot.state_writes == 1
    restarted = w.make_status(topic_counts=False)  # nothing in memory: reads the room state
    await CountsRefresher(restarted, cast(Any, w.portals)).tick()
    assert w.bot.state_writes == 1


async def test_migration_shows_the_change_since_last_week(kv: KVRepo) -> None:
    w = World(kv, topic_counts=False)
    refresher = CountsRefresher(w.status, cast(Any, w.portals))
    first = await w.status.overview()
    assert "* group Room 1: 1 moved, 0 on Session, 0 unknown (no count from a week ago yet)" in (
        first
    )
    assert "Since last week: no portal has a count from a week ago yet." in first

    # A week of hourly counts; Tom writes on Session, Uma's ghost joins, then Bob moves.
    for hour in range(8 * 24):
        w.clock.now = START + hour * HOUR_MS
        if hour == 2 * 24:
            w.tom_writes_and_uma_joins()
        if hour == 5 * 24:
            w.bot.members["!room1:hs"].append("@bob:hs")
        await refresher.tick()
    text = await w.status.overview()
    assert "* group Room 1: 2 moved, 1 on Session, 1 unknown (since " in text
    assert ": +1 moved, +1 on Session)" in text
    assert "Since last week: +1 moved, +1 on Session (over the 2 portals counted a week ago)." in (
        text
    )
    # The direct chat, counted by `migration` only, has its first count from the start.
    assert "* direct Room 2: 1 moved, 0 on Session, 0 unknown (since " in text
