"""Deadline reminders and the day after (docs/migration.md §5, §6).

With ``migration.deadline`` set, each tick (driven by an injectable clock) finds the reminder
due today: the smallest scheduled day count (``migration.reminder_days``) not below the days
left, so a day missed while the bridge was down is caught up once, with the true days left.
Each portal gets it once: a kv key per portal, day and side is claimed *before* posting (a
restart never posts twice; a failed post releases its key for the next tick). The Session side
of a portal is posted only where ``announce`` is on, through the announcer of its kind; the
Matrix side is a notice listing who is still only on Session. After the deadline plus
``migration.grace_days`` every portal is finalized (:class:`Finalizer`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.core.moved import MigrationStatus, WhoReport
from bridge.db.records import PortalKind, PortalRecord, now_ms
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.core.reminders")

DAY_MS = 86_400_000
#: Portal kinds that get reminders and are finalized (a direct chat is one person's).
SHARED_KINDS = (PortalKind.COMMUNITY, PortalKind.GROUP)
Notify = Callable[[str, str], Awaitable[None]]


class SessionAnnouncer(Protocol):
    """Posts a text on the Session side of a portal (community: the bot; group: wired by the
    group kind)."""

    async def announce(self, portal: PortalRecord, text: str) -> None: ...


@dataclass(frozen=True)
class ReminderSettings:
    deadline: str  # YYYY-MM-DD, "" = no reminders, no finalize
    days: tuple[int, ...] = (30, 14, 7, 3, 1)
    grace_days: int = 7
    template_session: str = ""
    template_matrix: str = ""
    howto: str = ""


def today_of(ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).date()


def days_until(deadline: str, ms: int) -> int | None:
    if not deadline:
        return None
    return (datetime.date.fromisoformat(deadline) - today_of(ms)).days


def due_reminder(left: int | None, days: Iterable[int]) -> int | None:
    """The scheduled day count whose reminder is due with ``left`` days left, if any: the
    smallest one not below ``left`` (none after the deadline)."""
    if left is None or left < 0:
        return None
    candidates = [d for d in days if d >= left]
    return min(candidates) if candidates else None


def is_past_grace(settings: ReminderSettings, ms: int) -> bool:
    left = days_until(settings.deadline, ms)
    return left is not None and -left > settings.grace_days


def room_link(portal: PortalRecord) -> str:
    return f"https://matrix.to/#/{portal.mxid}"


@dataclass(frozen=True)
class ReminderText:
    days: int
    moved: int
    total: int
    link: str
    howto: str

    def render(self, template: str) -> str:
        return template.format(
            days=self.days, moved=self.moved, total=self.total, link=self.link, howto=self.howto
        )


def text_for(report: WhoReport, portal: PortalRecord, left: int, howto: str) -> ReminderText:
    counts = report.counts()
    total = counts["moved"] + counts["on_session"] + counts["unknown"]
    return ReminderText(left, counts["moved"], total, room_link(portal), howto)


def announce_key(portal_id: int) -> str:
    return f"announce:{portal_id}"


class AnnounceFlags:
    """The per-portal ``announce on|off`` flag (off by default), in kv."""

    def __init__(self, kv: KVRepo) -> None:
        self._kv = kv

    async def is_on(self, portal_id: int) -> bool:
        return await self._kv.get(announce_key(portal_id)) == "on"

    async def set(self, portal_id: int, on: bool) -> None:
        if on:
            await self._kv.set(announce_key(portal_id), "on")
        else:
            await self._kv.delete(announce_key(portal_id))


class Once:
    """Claims kv keys before an action; releases them when it fails (retried next tick)."""

    def __init__(self, kv: KVRepo, clock: Callable[[], int]) -> None:
        self._kv = kv
        self._clock = clock

    async def done(self, key: str) -> bool:
        return await self._kv.get(key) is not None

    async def run(self, key: str, action: Callable[[], Awaitable[None]]) -> bool:
        """Run ``action`` unless ``key`` was claimed; True if it ran and succeeded."""
        if await self._kv.get(key) is not None:
            return False
        await self._kv.set(key, str(self._clock()))
        try:
            await action()
        except Exception as e:  # one portal's failure must not stop the others
            log.warning("%s failed, retried on the next tick: %s", key, e)
            await self._kv.delete(key)
            return False
        return True


class ReminderService:
    """Posts the due reminders; :meth:`tick` is what the loop (and a test) calls."""

    def __init__(
        self,
        *,
        settings: ReminderSettings,
        kv: KVRepo,
        portals: PortalRepo,
        status: MigrationStatus,
        announcers: Mapping[PortalKind, SessionAnnouncer],
        notify: Notify,
        on_past_grace: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.flags = AnnounceFlags(kv)
        self._once = Once(kv, clock)
        self._portals = portals
        self._status = status
        self._announcers = announcers
        self._notify = notify
        self._on_past_grace = on_past_grace
        self.clock = clock

    async def tick(self) -> int:
        """Post what is due now; the number of posts and notices made."""
        now = self.clock()
        if is_past_grace(self.settings, now):
            if self._on_past_grace is not None:
                await self._on_past_grace()
            return 0
        left = days_until(self.settings.deadline, now)
        due = due_reminder(left, self.settings.days)
        if due is None or left is None:
            return 0
        made = 0
        for portal in await self._portals.list_active():
            if portal.kind in SHARED_KINDS and portal.mxid is not None:
                made += await self._remind(portal, due, left)
        return made

    async def _remind(self, portal: PortalRecord, due: int, left: int) -> int:
        session_key = f"reminder:{portal.id}:{due}:session"
        matrix_key = f"reminder:{portal.id}:{due}:matrix"
        announcer = self._announcers.get(portal.kind)
        announce = announcer is not None and await self.flags.is_on(portal.id)
        if await self._once.done(matrix_key) and (
            not announce or await self._once.done(session_key)
        ):
            return 0  # nothing left to post today: no need to count the room's people
        report = await self._status.who(portal)
        text = text_for(report, portal, left, self.settings.howto)
        made = 0
        if announce and announcer is not None:
            body = text.render(self.settings.template_session)

            async def post() -> None:
                await announcer.announce(portal, body)

            made += await self._once.run(session_key, post)
        notice = text.render(self.settings.template_matrix)
        names = await self._status.ghost_names(report)
        still = [f"* {names.get(p.who, p.who[:10])} (`{p.who[:10]}…`)" for p in report.on_session]
        if still:
            notice += "\n\nStill only on Session:\n" + "\n".join(still)

        async def tell() -> None:
            await self._notify(str(portal.mxid), notice)

        made += await self._once.run(matrix_key, tell)
        return made

    async def run(self, interval: float = 3600.0) -> None:
        """Tick forever (supervised by the app)."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("Reminder tick failed; trying again later")
            await asyncio.sleep(interval)
