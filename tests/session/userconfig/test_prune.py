"""ConvoInfoVolatile pruning (docs/user-configs.md §2): conversations read more than 45 days
ago and not marked unread are dropped before a push, as libsession does (pure)."""

from __future__ import annotations

from bridge.session.groups.bencode import BValue
from bridge.session.userconfig import views

DAY = 86_400_000
NOW = 1_800_000_000_000
OLD, NEW, UNREAD = (bytes([5]) + bytes([b]) * 32 for b in (1, 2, 3))
GROUP_OLD = bytes([3]) + b"\x09" * 32


def read(at: int, unread: bool = False) -> dict[bytes, BValue]:
    return {b"r": at, b"u": 1} if unread else {b"r": at}


def test_stale_conversations_go_unread_and_recent_ones_stay() -> None:
    data: dict[bytes, BValue] = {
        b"1": {
            OLD: read(NOW - 46 * DAY),
            NEW: read(NOW - 44 * DAY),
            UNREAD: read(NOW - 400 * DAY, unread=True),
        },
        b"g": {GROUP_OLD: read(NOW - 46 * DAY)},
        b"C": {OLD: read(0)},
        b"o": {
            b"https://old.example": {b"#": b"k" * 32, b"R": {b"room": read(NOW - 90 * DAY)}},
            b"https://mixed.example": {
                b"#": b"q" * 32,
                b"R": {b"a": read(NOW - 90 * DAY), b"b": read(NOW - DAY)},
            },
        },
        b"x": b"unknown key, kept",
    }
    pruned = views.prune_convo_info(data, NOW)
    assert set(views.one_to_one_reads(pruned)) == {NEW.hex(), UNREAD.hex()}
    assert views.group_reads(pruned) == {}
    assert b"g" not in pruned and b"C" not in pruned  # emptied tables go
    assert set(views.community_reads(pruned)) == {("https://mixed.example", "b")}
    assert pruned[b"o"] == {
        b"https://mixed.example": {b"#": b"q" * 32, b"R": {b"b": read(NOW - DAY)}}
    }
    assert pruned[b"x"] == b"unknown key, kept"
    # the input is not changed
    assert set(views.one_to_one_reads(data)) == {OLD.hex(), NEW.hex(), UNREAD.hex()}


def test_nothing_stale_gives_equal_data() -> None:
    data: dict[bytes, BValue] = {b"1": {NEW: read(NOW)}}
    assert views.prune_convo_info(data, NOW) == data
    assert views.prune_convo_info({}, NOW) == {}
