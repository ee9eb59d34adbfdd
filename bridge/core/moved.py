"""Who has moved (docs/migration.md §3): ``who`` in a portal, its counts as room state of the
bridge's own type (and optionally in the topic), and the admins' ``migration`` overview with
the trend since last week.

A portal's people are grouped as *moved* (a native Matrix user, a login's owner, or the Matrix
account of a linked Session ID), *on Session* (a Session ID that wrote in the portal and is not
linked: when it last wrote, from the message table) and *unknown* (a ghost in the room that
never wrote there: the bridge cannot tell). :func:`classify` is pure.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import JSON, EventType, RoomID

from bridge.core.ghosts import GhostManager
from bridge.core.migration_trend import Sample, WeeklyCounts, change_text, total_text
from bridge.core.pills import LinkedIds
from bridge.core.topic_counts import TopicCounts
from bridge.db.records import PortalKind, PortalRecord, now_ms
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.links import IdentityKind, LinkRepo
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.core.moved")

#: The room state event with a portal's counts (state key ""), for widgets and clients.
MIGRATION_STATE = EventType("network.session.migration", EventType.Class.STATE)

#: Portal kinds whose topic may carry the counts (a direct chat's topic is its own).
TOPIC_KINDS = (PortalKind.COMMUNITY, PortalKind.GROUP)

ServerKeyOf = Callable[[PortalRecord], bytes | None]
"""The community server key of a portal (None for other kinds): blinded ids need it."""


@dataclass(frozen=True)
class Person:
    who: str  # a Matrix ID, or a Session ID for those still on Session
    how: str = ""  # moved: "Matrix", "logged in", "linked"
    last_written: int | None = None  # on Session: milliseconds


@dataclass
class WhoReport:
    moved: list[Person] = field(default_factory=list)
    on_session: list[Person] = field(default_factory=list)
    unknown: list[Person] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "moved": len(self.moved),
            "on_session": len(self.on_session),
            "unknown": len(self.unknown),
        }


def classify(
    members: Iterable[str],
    last_written: Mapping[str, int],
    *,
    ghost_session_id: Callable[[str], str | None],
    linked_owner: Callable[[str], str | None],
    logged_in: set[str],
    ignore: set[str],
) -> WhoReport:
    """Group a portal's Matrix members and its Session authors (``last_written``)."""
    report = WhoReport()
    moved: dict[str, str] = {}
    session_ids: set[str] = set()
    for mxid in members:
        if mxid in ignore:
            continue
        sid = ghost_session_id(mxid)
        if sid is None:
            moved.setdefault(mxid, "logged in" if mxid in logged_in else "Matrix")
        else:
            session_ids.add(sid)
    for sid in sorted(session_ids | set(last_written)):
        owner = linked_owner(sid)
        if owner is not None:
            moved[owner] = "linked"
        elif sid in last_written:
            report.on_session.append(Person(sid, last_written=last_written[sid]))
        else:
            report.unknown.append(Person(sid))
    report.moved = [Person(mxid, how) for mxid, how in sorted(moved.items())]
    report.on_session.sort(key=lambda p: -(p.last_written or 0))
    return report


def when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def days_left(deadline: str, today: datetime.date) -> int | None:
    """Days from ``today`` until ``deadline`` (YYYY-MM-DD), or None without one."""
    if not deadline:
        return None
    return (datetime.date.fromisoformat(deadline) - today).days


def who_text(report: WhoReport, name: Callable[[str], str]) -> str:
    """The Markdown answer to ``who``; ``name`` shows a Session ID (the ghost's name)."""
    counts = report.counts()
    lines = [
        f"**Moved to Matrix ({counts['moved']})**",
        *(f"* {p.who} ({p.how})" for p in report.moved),
        "",
        f"**Still on Session ({counts['on_session']})**",
        *(
            f"* {name(p.who)} (`{p.who[:10]}…`), last wrote {when(p.last_written or 0)}"
            for p in report.on_session
        ),
    ]
    if report.unknown:
        lines += ["", f"**Unknown ({counts['unknown']})**: in the room, never seen writing"]
        lines += [f"* {name(p.who)} (`{p.who[:10]}…`)" for p in report.unknown]
    return "\n".join(lines)


class MigrationStatus:
    """``who`` and ``migration``: reads the room, the identity map and the message table;
    keeps the counts in the room state, optionally in the topic (:class:`TopicCounts`), and a
    daily sample of them for the weekly trend (:class:`WeeklyCounts`)."""

    def __init__(
        self,
        *,
        links: LinkRepo,
        portals: PortalRepo,
        ghosts: GhostManager,
        linked: LinkedIds,
        bot: IntentAPI,
        server_key_of: ServerKeyOf,
        deadline: str,
        kv: KVRepo,
        topic_counts: bool = False,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._links = links
        self._portals = portals
        self._ghosts = ghosts
        self._linked = linked
        self._bot = bot
        self._server_key_of = server_key_of
        self._deadline = deadline
        self._clock = clock
        self.topic = TopicCounts(bot, kv, enabled=topic_counts)
        self.weekly = WeeklyCounts(kv, clock)
        self._published: dict[int, dict[str, int]] = {}  # portal → counts in its state

    async def count(self, portal: PortalRecord) -> WhoReport:
        """The portal's people, grouped (nothing written)."""
        room = RoomID(str(portal.mxid))
        members = [str(m) for m in await self._bot.get_joined_members(room)]
        key = self._server_key_of(portal)
        logins = await self._links.identities()
        return classify(
            members,
            await self._links.last_written(portal.id),
            ghost_session_id=self._ghosts.session_id_for,
            linked_owner=lambda sid: self._linked.owner(sid, key),
            logged_in={r.mxid for r in logins if r.kind is IdentityKind.LOGIN},
            ignore={str(self._bot.mxid)},
        )

    async def who(self, portal: PortalRecord) -> WhoReport:
        """The portal's people, grouped; the counts are also put in the room state (always)
        and, with ``migration.topic_counts``, in the topic (when they changed)."""
        report = await self.count(portal)
        await self.publish(portal, report.counts(), always=True)
        return report

    async def refresh(self, portal: PortalRecord) -> dict[str, int]:
        """Count again (the hourly refresh): the state event and the topic are written only
        when the counts changed; the day's sample is recorded."""
        counts = (await self.count(portal)).counts()
        await self.publish(portal, counts, always=False)
        await self.weekly.note(portal.id, counts)
        return counts

    async def publish(self, portal: PortalRecord, counts: dict[str, int], *, always: bool) -> None:
        room = str(portal.mxid)
        if not always and portal.id not in self._published:
            self._published[portal.id] = await self._stored_counts(room)
        if always or self._published.get(portal.id) != counts:
            content = {**counts, "updated_at": self._clock()}
            try:
                await self._bot.send_state_event(
                    RoomID(room), MIGRATION_STATE, cast("dict[str, JSON]", content), state_key=""
                )
                self._published[portal.id] = counts
            except MatrixError as e:  # e.g. too low a power level in a direct chat
                log.info("Could not store the migration counts in %s: %s", room, e)
        if portal.kind in TOPIC_KINDS:
            await self.topic.show(portal.id, room, counts)

    async def _stored_counts(self, room: str) -> dict[str, int]:
        """The counts in the room's state event (empty when there is none or it is unreadable:
        then it is written)."""
        try:
            content = await self._bot.get_state_event(RoomID(room), MIGRATION_STATE)
        except MatrixError:
            return {}
        raw = content.serialize() if hasattr(content, "serialize") else {}
        return {k: v for k, v in raw.items() if k != "updated_at" and isinstance(v, int)}

    async def ghost_names(self, report: WhoReport) -> dict[str, str]:
        people = [p.who for p in (*report.on_session, *report.unknown)]
        return await self._ghosts.pill_names(people)

    async def overview(self) -> str:
        """The admins' ``migration``: each portal's counts and their change since last week,
        the identity map, days left."""
        lines = ["**Migration**", ""]
        changes: list[tuple[dict[str, int], Sample]] = []
        for portal in await self._portals.list_active():
            try:
                counts = (await self.who(portal)).counts()
                base = await self.weekly.note(portal.id, counts)
            except Exception as e:  # one unreadable room must not hide the others
                log.warning("No counts for portal %d: %s", portal.id, e)
                lines.append(f"* {portal.kind.value} {portal.name or portal.mxid}: unreadable")
                continue
            if base is not None:
                changes.append((counts, base))
            lines.append(
                f"* {portal.kind.value} {portal.name or portal.mxid}: {counts['moved']} moved, "
                f"{counts['on_session']} on Session, {counts['unknown']} unknown "
                f"({change_text(counts, base)})"
            )
        kinds = await self._links.counts_by_kind()
        lines += [
            "",
            total_text(changes),
            f"Logins: {kinds[IdentityKind.LOGIN]}, links: {kinds[IdentityKind.LINK]}, "
            f"bridge-made identities: {kinds[IdentityKind.BRIDGE_IDENTITY]}.",
        ]
        today = datetime.datetime.fromtimestamp(self._clock() / 1000, tz=datetime.UTC).date()
        left = days_left(self._deadline, today)
        lines.append(
            "No deadline set (`migration.deadline`)."
            if left is None
            else f"Days left until {self._deadline}: {left}."
        )
        return "\n".join(lines)
