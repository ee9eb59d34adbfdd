"""The group description a room topic stands for: a topic edited on Matrix loses the
disappearing-messages line the bridge appends; names and descriptions over Session's limits are
refused and put back (bridge/core/group/admin_info.py)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mautrix.types import (
    EventID,
    EventType,
    RoomID,
    RoomNameStateEventContent,
    RoomTopicStateEventContent,
    StateEvent,
    UserID,
)

from bridge.core.group.admin_acting import AdminRefused
from bridge.core.group.admin_info import GroupInfoFromMatrix, description_of, too_long
from bridge.core.group.portals import group_topic
from bridge.core.topic_counts import with_counts
from bridge.db.records import PortalKind, PortalRecord
from bridge.session.groups.info import DESCRIPTION_MAX, NAME_MAX, Info


def test_a_topic_without_a_timer_is_the_description() -> None:
    assert description_of("  Team chat ", Info()) == "Team chat"
    assert description_of("Team chat", None) == "Team chat"


def test_the_timer_line_is_not_taken_into_the_description() -> None:
    timed = Info(description="old", disappearing_timer=3600)
    edited = group_topic(timed).replace("old", "Team chat, renamed")
    assert description_of(edited, timed) == "Team chat, renamed"
    assert description_of(group_topic(Info(disappearing_timer=3600)), timed) == ""
    assert description_of("Something new", timed) == "Something new"


def test_the_migration_counts_line_is_not_taken_into_the_description() -> None:
    timed = Info(description="Team chat", disappearing_timer=3600)
    counted = with_counts(group_topic(timed), {"moved": 3, "on_session": 2, "unknown": 0})
    assert "Moved to Matrix" in counted
    assert description_of(counted, timed) == "Team chat"
    assert description_of(
        with_counts("Team chat", {"moved": 1, "on_session": 1, "unknown": 0}), None
    ) == ("Team chat")


# --- Session's limits on names and descriptions (docs/groups-v2.md §2.1) ----------------------


def test_names_and_descriptions_over_the_byte_limits_are_refused_with_the_limit() -> None:
    assert too_long("name", "n" * NAME_MAX) is None
    refusal = too_long("name", "n" * (NAME_MAX + 1), "The room keeps the group's name.")
    assert refusal is not None
    assert "at most 100 bytes" in refusal and "(this one has 101)" in refusal
    assert refusal.endswith("The room keeps the group's name.")
    # Bytes of UTF-8, not characters: 50 two-byte letters fit, 51 do not.
    assert too_long("name", "é" * 50) is None
    assert too_long("name", "é" * 51) is not None
    assert too_long("description", "d" * DESCRIPTION_MAX) is None
    description = too_long("description", "d" * (DESCRIPTION_MAX + 1))
    assert description is not None and "at most 2000 bytes" in description


class FakeActing:
    """Fails the test if a change is tried: a refused name never reaches Session."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def view(self, group: str) -> None:
        return None

    async def run(self, portal: PortalRecord, mxid: str, what: str, work: Any) -> Any:
        self.ran.append(what)
        return None, None


class FakeBot:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.states: list[tuple[EventType, Any]] = []

    async def set_room_name(self, room: str, name: str) -> None:
        self.names.append(name)

    async def send_state_event(self, room: str, event_type: EventType, content: Any) -> None:
        self.states.append((event_type, content))


class FakePortals:
    def __init__(self) -> None:
        self.updated: list[PortalRecord] = []

    async def update(self, portal: PortalRecord) -> PortalRecord:
        self.updated.append(portal)
        return portal


PORTAL = PortalRecord(
    1, PortalKind.GROUP, "03" + "ab" * 32, "!g:x", "Readers", "Books", None, None,
    False, None, False, 0, None,
)  # fmt: skip


def state(content: Any, event_type: EventType) -> StateEvent:
    return StateEvent(
        type=event_type,
        room_id=RoomID("!g:x"),
        event_id=EventID("$e"),
        sender=UserID("@alice:x"),
        timestamp=0,
        state_key="",
        content=content,
    )


def info_from_matrix() -> tuple[GroupInfoFromMatrix, FakeActing, FakeBot, FakePortals]:
    acting, bot, portals = FakeActing(), FakeBot(), FakePortals()
    made = GroupInfoFromMatrix(
        acting=cast(Any, acting),
        portals=cast(Any, portals),
        bot=cast(Any, bot),
        download=cast(Any, None),
    )
    return made, acting, bot, portals


async def test_a_name_over_the_limit_is_refused_and_the_room_name_put_back() -> None:
    made, acting, bot, portals = info_from_matrix()
    event = state(RoomNameStateEventContent(name="x" * 101), EventType.ROOM_NAME)
    with pytest.raises(AdminRefused, match="at most 100 bytes"):
        await made.on_state(PORTAL, event)
    assert bot.names == ["Readers"] and acting.ran == [] and portals.updated == []
    # At the limit it goes through to the group.
    event = state(RoomNameStateEventContent(name="x" * 100), EventType.ROOM_NAME)
    assert await made.on_state(PORTAL, event)
    assert acting.ran == ["rename the group"]
    assert portals.updated[-1].name == "x" * 100


async def test_a_topic_over_the_description_limit_is_refused_and_put_back() -> None:
    made, acting, bot, _ = info_from_matrix()
    event = state(RoomTopicStateEventContent(topic="t" * 2001), EventType.ROOM_TOPIC)
    with pytest.raises(AdminRefused, match="at most 2000 bytes"):
        await made.on_state(PORTAL, event)
    ((event_type, content),) = bot.states
    assert event_type == EventType.ROOM_TOPIC and content.topic == "Books"
    assert acting.ran == []
