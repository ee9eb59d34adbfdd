"""A group portal's topic: the group's description, then its disappearing-messages setting
(Info ``E``) when it is on, as a direct chat's topic shows its own
(bridge/core/group/portals.py)."""

from __future__ import annotations

from bridge.core.group.portals import group_topic
from bridge.session.groups.info import Info


def test_the_topic_is_the_description_while_messages_do_not_disappear() -> None:
    assert group_topic(Info(description="Team chat")) == "Team chat"
    assert group_topic(Info()) == ""


def test_the_topic_ends_with_the_disappearing_setting() -> None:
    assert group_topic(Info(description="Team chat", disappearing_timer=3600)) == (
        "Team chat\n\nDisappearing messages set to 1 hour after sending"
    )
    assert group_topic(Info(disappearing_timer=86400)) == (
        "Disappearing messages set to 1 day after sending"
    )
