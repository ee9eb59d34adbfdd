"""The group description a room topic stands for: a topic edited on Matrix loses the
disappearing-messages line the bridge appends (bridge/core/group/admin_info.py)."""

from __future__ import annotations

from bridge.core.group.admin_info import description_of
from bridge.core.group.portals import group_topic
from bridge.core.topic_counts import with_counts
from bridge.session.groups.info import Info


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
