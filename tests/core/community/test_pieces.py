"""Pure pieces of community portals: reaction diffs, reaction keys, room file URLs, room info."""

from __future__ import annotations

from bridge.core.community.media import room_file_id
from bridge.core.community.reactions import reaction_changes
from bridge.core.community.relations import valid_reaction
from bridge.core.community.room_info import AppliedInfo, parse_applied
from bridge.db.records import ReactionRecord
from bridge.session.sogs.models import ReactionSummary

SAM = "15" + "a" * 64
ANN = "15" + "b" * 64
OWN = "15" + "c" * 64


def record(rid: int, sender: str, emoji: str) -> ReactionRecord:
    return ReactionRecord(rid, 1, f"$r{rid}", 10, sender, emoji)


def is_own(author: str) -> bool:
    return author == OWN


def test_new_reactors_are_added_once_and_own_ones_skipped() -> None:
    summaries = [
        ReactionSummary("👍", 0, 3, (SAM, OWN, ANN)),
        ReactionSummary("🎉", 1, 1, (SAM,)),
    ]
    changes = reaction_changes(summaries, [record(1, SAM, "👍")], is_own)
    assert changes.added == ((ANN, "👍"), (SAM, "🎉"))
    assert changes.removed == ()


def test_gone_reactions_are_removed_but_matrix_ones_are_kept() -> None:
    recorded = [
        record(1, SAM, "👍"),
        record(2, ANN, "🎉"),
        record(3, "@alice:hs", "🎉"),  # a relayed Matrix user's, through the bot
        record(4, OWN, "🔥"),  # a logged-in Matrix user's
    ]
    changes = reaction_changes([ReactionSummary("👍", 0, 1, (SAM,))], recorded, is_own)
    assert changes.added == ()
    assert [r.id for r in changes.removed] == [2]


def test_a_capped_reactor_list_removes_nothing_for_that_emoji() -> None:
    # 25 reactors but only 20 listed: someone not listed may still be reacting.
    listed = tuple(f"15{i:064x}" for i in range(20))
    summary = ReactionSummary("👍", 0, 25, listed)
    changes = reaction_changes([summary], [record(1, SAM, "👍")], is_own)
    assert changes.removed == ()
    complete = ReactionSummary("👍", 0, 20, listed)
    assert [
        r.id for r in reaction_changes([complete], [record(1, SAM, "👍")], is_own).removed
    ] == [1]


def test_reaction_keys_session_accepts() -> None:
    assert valid_reaction("👍")
    assert valid_reaction("👍🏽")
    assert valid_reaction("ok")
    assert not valid_reaction("")
    assert not valid_reaction("x" * 13)
    assert not valid_reaction("a/b")
    assert not valid_reaction("\n")


def test_room_file_urls_of_the_same_server_only() -> None:
    base = "https://sogs.example:8443"
    assert room_file_id(f"{base}/room/lobby/file/12", base) == ("lobby", 12)
    assert room_file_id(f"{base}/room/lobby/file/12/photo.jpg", base) == ("lobby", 12)
    assert room_file_id("https://other.example:8443/room/lobby/file/12", base) is None
    assert room_file_id(f"{base}/file/12", base) is None
    assert room_file_id(f"{base}/room/lobby/file/x", base) is None
    sub = "http://host/sogs"
    assert room_file_id("http://host/sogs/room/r/file/3", sub) == ("r", 3)
    assert room_file_id("http://host/room/r/file/3", sub) is None


def test_applied_info_round_trip_and_garbage() -> None:
    assert parse_applied('{"name": "A", "topic": "", "image_id": 4}') == AppliedInfo("A", "", 4)
    assert parse_applied(None) is None
    assert parse_applied("not json") is None
    assert parse_applied("[1, 2]") is None
    assert parse_applied('{"name": 5}') == AppliedInfo()
