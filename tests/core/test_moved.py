"""Who has moved: grouping a portal's people, the days left, the `who` text (pure)."""

from __future__ import annotations

import datetime

from bridge.core.moved import classify, days_left, when, who_text

GHOST = "@session_{}:hs"
SAM, TOM, UMA, VIC = ("05" + c * 64 for c in "abcd")


def ghost_sid(mxid: str) -> str | None:
    if mxid.startswith("@session_"):
        return mxid.removeprefix("@session_").split(":")[0]
    return None


def test_classify_groups_members_and_authors() -> None:
    members = [
        "@bot:hs",
        "@alice:hs",  # a native Matrix user
        "@bob:hs",  # logged in
        GHOST.format(SAM),  # linked to @sam:hs, who is not in the room (yet)
        GHOST.format(TOM),  # wrote here
        GHOST.format(UMA),  # never wrote here
    ]
    last = {TOM: 2_000, SAM: 1_000, VIC: 3_000}  # Vic wrote, his ghost left
    report = classify(
        members,
        last,
        ghost_session_id=ghost_sid,
        linked_owner=lambda sid: "@sam:hs" if sid == SAM else None,
        logged_in={"@bob:hs"},
        ignore={"@bot:hs"},
    )
    assert [(p.who, p.how) for p in report.moved] == [
        ("@alice:hs", "Matrix"),
        ("@bob:hs", "logged in"),
        ("@sam:hs", "linked"),
    ]
    assert [(p.who, p.last_written) for p in report.on_session] == [(VIC, 3_000), (TOM, 2_000)]
    assert [p.who for p in report.unknown] == [UMA]
    assert report.counts() == {"moved": 3, "on_session": 2, "unknown": 1}


def test_a_linked_member_present_on_both_sides_counts_once() -> None:
    report = classify(
        ["@sam:hs", GHOST.format(SAM)],
        {SAM: 5},
        ghost_session_id=ghost_sid,
        linked_owner=lambda sid: "@sam:hs",
        logged_in=set(),
        ignore=set(),
    )
    assert [(p.who, p.how) for p in report.moved] == [("@sam:hs", "linked")]
    assert report.counts() == {"moved": 1, "on_session": 0, "unknown": 0}


def test_days_left_and_times() -> None:
    today = datetime.date(2026, 12, 4)
    assert days_left("", today) is None
    assert days_left("2026-12-28", today) == 24
    assert days_left("2026-12-01", today) == -3
    assert when(0) == "1970-01-01 00:00 UTC"


def test_who_text_lists_every_group() -> None:
    report = classify(
        ["@alice:hs", GHOST.format(TOM), GHOST.format(UMA)],
        {TOM: 86_400_000},
        ghost_session_id=ghost_sid,
        linked_owner=lambda sid: None,
        logged_in=set(),
        ignore=set(),
    )
    text = who_text(report, lambda sid: {TOM: "Tom", UMA: "Uma"}[sid])
    assert "**Moved to Matrix (1)**\n* @alice:hs (Matrix)" in text
    assert f"* Tom (`{TOM[:10]}…`), last wrote 1970-01-02 00:00 UTC" in text
    assert "**Unknown (1)**" in text and "* Uma" in text
