"""The migration counts in a portal's room topic (docs/migration.md §3), with
``migration.topic_counts`` on.

The topic stays what the group's or community's info (or a room admin) made it: the counts are
one line of their own at its end, ``Moved to Matrix: 5 of 12 people``, found again by its exact
form, replaced when the counts change and removed when the option is turned off. The topic is
read from the room each time, so a new description from Session simply gets the line appended
again; nothing is sent when the topic already says the right thing. :func:`with_counts` is
pure; :class:`TopicCounts` reads and writes the room.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError, MNotFound
from mautrix.types import EventType, RoomID, RoomTopicStateEventContent

from bridge.db.repos.kv import KVRepo

log = logging.getLogger("bridge.core.topic_counts")

_LINE = re.compile(r"Moved to Matrix: \d+ of \d+ people")


def counts_line(counts: Mapping[str, int]) -> str:
    total = counts["moved"] + counts["on_session"] + counts["unknown"]
    return f"Moved to Matrix: {counts['moved']} of {total} people"


def base_topic(topic: str) -> str:
    """``topic`` without a counts line at its end (and the blank line before it)."""
    lines = topic.split("\n")
    if lines and _LINE.fullmatch(lines[-1]):
        lines.pop()
        while lines and not lines[-1].strip():
            lines.pop()
    return "\n".join(lines)


def with_counts(topic: str, counts: Mapping[str, int] | None) -> str:
    """``topic`` ending with the counts line (None: without one)."""
    base = base_topic(topic)
    if counts is None:
        return base
    line = counts_line(counts)
    return f"{base}\n\n{line}" if base else line


def _key(portal_id: int) -> str:
    return f"topic-counts:{portal_id}"


class TopicCounts:
    """Keeps a portal room's topic line; a kv key per portal remembers that the line was
    written, so turning the option off removes it once and then costs nothing."""

    def __init__(self, bot: IntentAPI, kv: KVRepo, *, enabled: bool) -> None:
        self._bot = bot
        self._kv = kv
        self.enabled = enabled

    async def show(self, portal_id: int, room_id: str, counts: Mapping[str, int]) -> bool:
        """Bring the room's topic in line with ``counts`` (or remove the line when the option
        is off); True if the topic was changed. Matrix errors are logged, not raised."""
        if not self.enabled and await self._kv.get(_key(portal_id)) is None:
            return False
        room = RoomID(room_id)
        try:
            current = await self._topic(room)
            wanted = with_counts(current, counts if self.enabled else None)
            if wanted != current:
                await self._bot.set_room_topic(room, wanted)
        except MatrixError as e:  # e.g. the bot may not change the topic there
            log.info("The migration counts are not in the topic of %s: %s", room_id, e)
            return False
        changed = wanted != current
        if not self.enabled:
            await self._kv.delete(_key(portal_id))
        elif changed:
            await self._kv.set(_key(portal_id), "1")
        return changed

    async def _topic(self, room: RoomID) -> str:
        try:
            content = await self._bot.get_state_event(room, EventType.ROOM_TOPIC)
        except MNotFound:
            return ""
        if isinstance(content, RoomTopicStateEventContent):
            return content.topic or ""
        return str(getattr(content, "topic", "") or "")
