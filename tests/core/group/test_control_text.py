"""The notices of group control messages (bridge/core/group/inbound.py)."""

from __future__ import annotations

from bridge.core.group.inbound import control_text
from bridge.session.messages import (
    GroupInfoChange,
    GroupInfoChangeType,
    GroupMemberChange,
    GroupMemberChangeType,
    GroupMemberLeftNotification,
)

SAM = "05" + "aa" * 32


def names(session_id: str) -> str:
    return {SAM: "Sam"}.get(session_id, "someone else")


def test_member_changes_name_the_members() -> None:
    added = GroupMemberChange(GroupMemberChangeType.ADDED, (SAM,), b"sig")
    assert control_text(added, names) == "Sam was added to the group."
    promoted = GroupMemberChange(GroupMemberChangeType.PROMOTED, (SAM, "05" + "bb" * 32), b"s")
    assert control_text(promoted, names) == "Sam, someone else became admin."


def test_info_changes() -> None:
    named = GroupInfoChange(GroupInfoChangeType.NAME, b"sig", updated_name="Choir")
    assert control_text(named, names) == "The group is now called Choir."
    timer = GroupInfoChange(GroupInfoChangeType.DISAPPEARING_MESSAGES, b"s", updated_expiration=60)
    assert "disappear 60 seconds after" in str(control_text(timer, names))
    off = GroupInfoChange(GroupInfoChangeType.DISAPPEARING_MESSAGES, b"s")
    assert control_text(off, names) == "Messages in this group no longer disappear."


def test_leaving_shows_through_members_not_a_notice() -> None:
    assert control_text(GroupMemberLeftNotification(), names) is None
