"""The trend since last week in ``migration`` (docs/migration.md §3).

Each portal's counts are sampled at most once a day (by the hourly counting and by every
``migration``) into the kv key ``migration-counts:<portal>``: the samples of the last week
plus the newest one at least a week old, which is what the counts are compared with. A
bridge that was down, or a portal bridged less than a week ago, has no week-old sample: the
overview says so instead of guessing. The functions are pure; :class:`WeeklyCounts` does the
kv reads and writes.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from bridge.db.records import now_ms
from bridge.db.repos.kv import KVRepo

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


@dataclass(frozen=True)
class Sample:
    at: int  # milliseconds
    moved: int
    on_session: int
    unknown: int


def parse(text: str | None) -> list[Sample]:
    """The samples stored under a portal's key (none for missing or unreadable text)."""
    if not text:
        return []
    try:
        return sorted((Sample(**item) for item in json.loads(text)), key=lambda s: s.at)
    except (ValueError, TypeError):
        return []


def dumps(samples: Sequence[Sample]) -> str:
    return json.dumps([asdict(s) for s in samples])


def week_ago(samples: Sequence[Sample], now: int) -> Sample | None:
    """The newest sample at least a week old, if any."""
    old = [s for s in samples if now - s.at >= WEEK_MS]
    return old[-1] if old else None


def record(samples: Sequence[Sample], counts: Mapping[str, int], now: int) -> list[Sample]:
    """``samples`` with today's counts added (when the newest is a day old or none), keeping
    the last week's and the newest one at least a week old."""
    kept = sorted(samples, key=lambda s: s.at)
    if not kept or now - kept[-1].at >= DAY_MS:
        kept.append(Sample(now, counts["moved"], counts["on_session"], counts["unknown"]))
    base = week_ago(kept, now)
    return [s for s in kept if base is None or s.at >= base.at]


def _signed(n: int) -> str:
    return f"{n:+d}"


def _day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d")


def change_text(counts: Mapping[str, int], base: Sample | None) -> str:
    """``since 2026-11-27: +3 moved, -2 on Session``, or that there is no week-old count."""
    if base is None:
        return "no count from a week ago yet"
    moved = counts["moved"] - base.moved
    on_session = counts["on_session"] - base.on_session
    return f"since {_day(base.at)}: {_signed(moved)} moved, {_signed(on_session)} on Session"


def total_text(changes: Sequence[tuple[Mapping[str, int], Sample]]) -> str:
    """The change over every portal that has a week-old count."""
    if not changes:
        return "Since last week: no portal has a count from a week ago yet."
    moved = sum(c["moved"] - b.moved for c, b in changes)
    on_session = sum(c["on_session"] - b.on_session for c, b in changes)
    return (
        f"Since last week: {_signed(moved)} moved, {_signed(on_session)} on Session "
        f"(over the {len(changes)} portal{'' if len(changes) == 1 else 's'} counted a week ago)."
    )


def _key(portal_id: int) -> str:
    return f"migration-counts:{portal_id}"


class WeeklyCounts:
    """The samples of each portal in kv."""

    def __init__(self, kv: KVRepo, clock: Callable[[], int] = now_ms) -> None:
        self._kv = kv
        self._clock = clock

    async def note(self, portal_id: int, counts: Mapping[str, int]) -> Sample | None:
        """Record ``counts`` (at most one sample a day); the week-old sample, if any."""
        now = self._clock()
        before = parse(await self._kv.get(_key(portal_id)))
        after = record(before, counts, now)
        if after != before:
            await self._kv.set(_key(portal_id), dumps(after))
        return week_ago(after, now)
