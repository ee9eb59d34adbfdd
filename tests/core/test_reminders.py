"""Deadline reminders, `remind` and finalize on a fake clock (no waiting): the schedule (pure),
then the services over a real (SQLite) kv table with fake portals, counts and senders."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.core.finalize import Finalizer
from bridge.core.moved import Person, WhoReport
from bridge.core.remind import MemberReminder
from bridge.core.reminders import (
    DAY_MS,
    ReminderService,
    ReminderSettings,
    due_reminder,
    is_past_grace,
)
from bridge.db.engine import Database
from bridge.db.models import Base
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.kv import KVRepo

DEADLINE = "2027-01-31"
BOT_SID = "05" + "b0" * 32
CAROL_SID = "05" + "c4" * 32
DAN_SID = "05" + "d4" * 32
SETTINGS = ReminderSettings(
    deadline=DEADLINE,
    days=(30, 14, 7, 3, 1),
    grace_days=7,
    template_session="{days} days left; {moved}/{total} moved: {link} {howto}",
    template_matrix="{days} days left here; {moved}/{total} on Matrix.",
    howto="Install a Matrix app.",
)


def at(days_before: int, hour: int = 12) -> int:
    """Milliseconds at ``hour`` UTC, ``days_before`` the deadline."""
    day = datetime.date.fromisoformat(DEADLINE) - datetime.timedelta(days=days_before)
    moment = datetime.datetime.combine(day, datetime.time(hour), tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


class Clock:
    def __init__(self) -> None:
        self.now = at(40)

    def __call__(self) -> int:
        return self.now


def portal(pid: int, kind: PortalKind = PortalKind.COMMUNITY) -> PortalRecord:
    return PortalRecord(
        id=pid,
        kind=kind,
        session_key=f"key{pid}",
        mxid=f"!room{pid}:hs.example",
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


class FakePortals:
    def __init__(self, portals: list[PortalRecord]) -> None:
        self.portals = portals

    async def list_active(self) -> list[PortalRecord]:
        return [p for p in self.portals if p.unbridged_at is None]


class FakeStatus:
    """Two moved, one still on Session (Carol), one unknown: four people."""

    def __init__(self) -> None:
        self.calls = 0

    async def who(self, portal: PortalRecord) -> WhoReport:
        self.calls += 1
        return WhoReport(
            moved=[Person("@alice:hs.example", "Matrix"), Person("@bob:hs.example", "linked")],
            on_session=[Person(CAROL_SID, last_written=1)],
            unknown=[Person(DAN_SID)],
        )

    async def ghost_names(self, report: WhoReport) -> dict[str, str]:
        return {CAROL_SID: "Carol"}


class Recorder:
    def __init__(self) -> None:
        self.posts: list[tuple[int, str]] = []
        self.notices: list[tuple[str, str]] = []
        self.fail = False

    async def announce(self, portal: PortalRecord, text: str) -> None:
        if self.fail:
            raise ConnectionError("server down")
        self.posts.append((portal.id, text))

    async def notify(self, room: str, text: str) -> None:
        self.notices.append((room, text))


@pytest.fixture
async def kv(tmp_path: Path) -> AsyncIterator[KVRepo]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'kv.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield KVRepo(database)
    finally:
        await database.close()


def service(kv: KVRepo, portals: FakePortals, rec: Recorder, clock: Clock, **kw: Any) -> Any:
    return ReminderService(
        settings=SETTINGS,
        kv=kv,
        portals=portals,  # type: ignore[arg-type]
        status=FakeStatus(),  # type: ignore[arg-type]
        announcers={PortalKind.COMMUNITY: rec, PortalKind.GROUP: rec},
        notify=rec.notify,
        clock=clock,
        **kw,
    )


# --- the schedule (pure) ----------------------------------------------------------------------


def test_due_on_the_scheduled_days_only_from_the_first_one() -> None:
    days = SETTINGS.days
    assert due_reminder(40, days) is None
    assert due_reminder(31, days) is None
    assert due_reminder(30, days) == 30
    assert due_reminder(29, days) == 30  # the same reminder: its kv key says it was posted
    assert due_reminder(14, days) == 14
    assert due_reminder(6, days) == 7
    assert due_reminder(1, days) == 1
    assert due_reminder(0, days) == 1
    assert due_reminder(-1, days) is None
    assert due_reminder(None, days) is None


def test_grace_period() -> None:
    assert not is_past_grace(SETTINGS, at(0))
    assert not is_past_grace(SETTINGS, at(-7))
    assert is_past_grace(SETTINGS, at(-8))
    assert not is_past_grace(ReminderSettings(deadline=""), at(-100))


# --- the service on a fake clock ------------------------------------------------------------


async def test_every_reminder_day_posts_once_per_portal_and_side(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    portals = FakePortals([portal(1), portal(2, PortalKind.GROUP), portal(3, PortalKind.DIRECT)])
    reminders = service(kv, portals, rec, clock)
    await reminders.flags.set(1, True)  # portal 2 keeps announce off
    posted_days = []
    for days_before in range(40, -3, -1):
        for hour in (0, 12, 23):  # several ticks a day
            clock.now = at(days_before, hour)
            before = len(rec.posts)
            await reminders.tick()
            if len(rec.posts) > before:
                posted_days.append(days_before)
    assert posted_days == [30, 14, 7, 3, 1]
    assert all(pid == 1 for pid, _ in rec.posts)  # announce on only; no direct chat
    assert rec.posts[0][1] == (
        "30 days left; 2/4 moved: https://matrix.to/#/!room1:hs.example Install a Matrix app."
    )
    # The Matrix notice in both shared portals on each of the five days, listing Carol.
    assert len(rec.notices) == 10
    assert {room for room, _ in rec.notices} == {"!room1:hs.example", "!room2:hs.example"}
    first = rec.notices[0][1]
    assert first.startswith("30 days left here; 2/4 on Matrix.")
    assert "Still only on Session:\n* Carol (`05c4c4c4c4…`)" in first
    assert DAN_SID[:10] not in first  # unknown people are not said to be on Session


async def test_a_restart_never_posts_twice(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    portals = FakePortals([portal(1)])
    clock.now = at(7, 9)
    first = service(kv, portals, rec, clock)
    await first.flags.set(1, True)
    assert await first.tick() == 2
    clock.now = at(7, 18)
    again = service(kv, portals, rec, clock)  # a new process: state only in kv
    assert await again.tick() == 0
    assert len(rec.posts) == 1 and len(rec.notices) == 1
    assert again._status.calls == 0  # all posted: the room's people are not even counted


async def test_a_day_missed_while_down_is_caught_up_once_with_the_true_days(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    reminders = service(kv, FakePortals([portal(1)]), rec, clock)
    await reminders.flags.set(1, True)
    clock.now = at(5)  # down on day 7: caught up with "5 days"
    await reminders.tick()
    clock.now = at(4)
    await reminders.tick()
    assert [text.split(";")[0] for _, text in rec.posts] == ["5 days left"]


async def test_a_failed_post_is_tried_again_on_the_next_tick(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    reminders = service(kv, FakePortals([portal(1)]), rec, clock)
    await reminders.flags.set(1, True)
    clock.now, rec.fail = at(3, 1), True
    await reminders.tick()
    assert rec.posts == [] and len(rec.notices) == 1
    clock.now, rec.fail = at(3, 2), False
    await reminders.tick()
    assert len(rec.posts) == 1 and len(rec.notices) == 1


async def test_announce_off_stops_the_session_side(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    reminders = service(kv, FakePortals([portal(1)]), rec, clock)
    await reminders.flags.set(1, True)
    await reminders.flags.set(1, False)
    assert not await reminders.flags.is_on(1)
    clock.now = at(14)
    await reminders.tick()
    assert rec.posts == [] and len(rec.notices) == 1


# --- finalize ---------------------------------------------------------------------------------


class Ender:
    def __init__(self, portals: FakePortals) -> None:
        self.portals = portals
        self.ended: list[int] = []
        self.told: list[str] = []
        self.deleted = 0

    async def end(self, record: PortalRecord) -> None:
        self.ended.append(record.id)
        self.portals.portals = [
            p if p.id != record.id else PortalRecord(**{**_fields(p), "unbridged_at": 1})
            for p in self.portals.portals
        ]

    async def delete(self) -> list[str]:
        self.deleted += 1
        return ["@alice:hs.example: the login of `05a1…`"]

    async def tell(self, text: str) -> None:
        self.told.append(text)


def _fields(p: PortalRecord) -> dict[str, Any]:
    return {name: getattr(p, name) for name in PortalRecord.__slots__}


async def test_finalize_after_deadline_and_grace(kv: KVRepo) -> None:
    clock, rec = Clock(), Recorder()
    portals = FakePortals([portal(1), portal(2, PortalKind.GROUP), portal(3, PortalKind.DIRECT)])
    ender = Ender(portals)
    finalizer = Finalizer(
        kv=kv,
        portals=portals,  # type: ignore[arg-type]
        announcers={PortalKind.COMMUNITY: rec},
        notify=rec.notify,
        end_portal=ender.end,
        delete_secrets=ender.delete,
        tell_admins=ender.tell,
        clock=clock,
    )
    reminders = service(kv, portals, rec, clock, on_past_grace=finalizer.everything)
    clock.now = at(-7, 23)  # the last day of grace: nothing yet
    await reminders.tick()
    assert ender.ended == [] and ender.told == []
    clock.now = at(-8, 0)
    await reminders.tick()
    assert sorted(ender.ended) == [1, 2]  # never a direct chat
    assert [pid for pid, _ in rec.posts] == [1]  # the community's last Session notice
    assert "https://matrix.to/#/!room1:hs.example" in rec.posts[0][1]
    assert sorted(room for room, _ in rec.notices) == ["!room1:hs.example", "!room2:hs.example"]
    assert ender.deleted == 1
    assert len(ender.told) == 1
    assert "Portals finalized now: 2" in ender.told[0]
    assert "@alice:hs.example: the login of" in ender.told[0]
    clock.now = at(-9)
    await Finalizer(  # a restart: done once
        kv=kv,
        portals=portals,  # type: ignore[arg-type]
        announcers={},
        notify=rec.notify,
        end_portal=ender.end,
        delete_secrets=ender.delete,
        tell_admins=ender.tell,
    ).everything()
    await reminders.tick()
    assert ender.deleted == 1 and len(ender.told) == 1 and sorted(ender.ended) == [1, 2]


async def test_finalize_one_portal_once(kv: KVRepo) -> None:
    rec, portals = Recorder(), FakePortals([portal(1)])
    ender = Ender(portals)
    finalizer = Finalizer(
        kv=kv,
        portals=portals,  # type: ignore[arg-type]
        announcers={PortalKind.COMMUNITY: rec},
        notify=rec.notify,
        end_portal=ender.end,
        delete_secrets=None,
        tell_admins=ender.tell,
    )
    assert await finalizer.portal(portal(1))
    assert not await finalizer.portal(portals.portals[0])  # now unbridged
    assert ender.ended == [1] and len(rec.posts) == 1 and len(rec.notices) == 1


async def test_a_portal_that_failed_to_end_is_ended_later_without_new_notices(
    kv: KVRepo,
) -> None:
    rec, portals = Recorder(), FakePortals([portal(1)])
    ender, fails = Ender(portals), [True]

    async def end(record: PortalRecord) -> None:
        if fails.pop():
            raise ConnectionError("homeserver down")
        await ender.end(record)

    finalizer = Finalizer(
        kv=kv,
        portals=portals,  # type: ignore[arg-type]
        announcers={PortalKind.COMMUNITY: rec},
        notify=rec.notify,
        end_portal=end,
        delete_secrets=ender.delete,
        tell_admins=ender.tell,
    )
    assert not await finalizer.everything()  # failed: nothing deleted, nobody told yet
    assert ender.deleted == 0 and ender.told == []
    fails.append(False)
    assert await finalizer.everything()
    assert ender.ended == [1] and ender.deleted == 1 and len(ender.told) == 1
    assert len(rec.posts) == 1 and len(rec.notices) == 1  # the last notices only once


# --- remind ---------------------------------------------------------------------------------


async def test_remind_once_a_day_with_reasons(kv: KVRepo) -> None:
    clock, sent = Clock(), []

    async def send(peer: str, text: str) -> None:
        sent.append((peer, text))

    reminder = MemberReminder(
        settings=SETTINGS,
        kv=kv,
        status=FakeStatus(),  # type: ignore[arg-type]
        is_linked=lambda sid: sid == DAN_SID,
        send=send,
        bot_session_id=BOT_SID,
        clock=clock,
    )
    room = portal(1)
    clock.now = at(10)
    assert "not a Session ID" in await reminder.remind(room, "15" + "ab" * 32)
    assert "bot's own" in await reminder.remind(room, BOT_SID)
    assert "already moved" in await reminder.remind(room, DAN_SID)
    assert "Sent a reminder" in await reminder.remind(room, CAROL_SID)
    assert "already got a reminder today" in await reminder.remind(room, CAROL_SID)
    clock.now += DAY_MS
    assert "Sent a reminder" in await reminder.remind(room, CAROL_SID)
    assert [peer for peer, _ in sent] == [CAROL_SID, CAROL_SID]
    assert sent[0][1].startswith("10 days left; 2/4 moved: https://matrix.to/#/!room1:hs.example")
