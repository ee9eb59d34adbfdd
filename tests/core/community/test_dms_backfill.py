"""Community DMs, the backfill policy and the edit mark, piece by piece (README, Community
direct messages; Backfill; Edits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from mautrix.errors import MatrixConnectionError

from bridge.backoff import Backoff
from bridge.core.community import boxes as boxes_module
from bridge.core.community.backfill import BackfillPolicy, backfill_room
from bridge.core.community.boxes import CommunityBoxes
from bridge.core.community.dm_keys import dm_portal_key, is_dm_portal, parse_dm_token
from bridge.core.community.service import community_key, parse_community_key
from bridge.core.portal import failures
from bridge.db.records import PortalKind, PortalRecord
from bridge.ids import BlindedID
from bridge.session.messages import VisibleMessage
from bridge.session.messages.decode import parse_content
from bridge.session.messages.encode import content_to_proto
from bridge.session.sogs.models import CommunityMessage, InboxEntry, PollResult, RoomInfo
from bridge.session.sogs.urls import CommunityServerRef, valid_room_token

SERVER = CommunityServerRef("https://sogs.example", bytes(range(32)))
PEER = BlindedID("15" + "ab" * 32)


def portal(key: str) -> PortalRecord:
    return PortalRecord(
        1, PortalKind.COMMUNITY, key, "!room", None, None, None, None,
        False, None, False, 0, None,
    )  # fmt: skip


def test_dm_keys_are_community_keys_that_no_room_token_can_be() -> None:
    key = dm_portal_key(SERVER, "05" + "cd" * 32, PEER.value)
    server, token = parse_community_key(key)
    assert server == SERVER and not valid_room_token(token)
    assert parse_dm_token(token) == ("05" + "cd" * 32, PEER)
    assert is_dm_portal(portal(key))
    assert not is_dm_portal(portal(community_key(SERVER, "lobby")))


@pytest.mark.parametrize("flag", [True, False])
def test_the_blocks_flag_is_said_true_or_false(flag: bool) -> None:
    message = VisibleMessage(body="hi", blocks_community_message_requests=flag)
    proto = content_to_proto(message)
    assert b"\xd0\x06" in proto  # field 106 (varint) is present, even when false
    decoded = parse_content(proto)
    assert isinstance(decoded, VisibleMessage)
    assert decoded.blocks_community_message_requests is flag
    unsaid = parse_content(content_to_proto(VisibleMessage(body="hi")))
    assert isinstance(unsaid, VisibleMessage)
    assert unsaid.blocks_community_message_requests is None


def _post(n: int, posted: float, deleted: bool = False) -> CommunityMessage:
    return CommunityMessage("lobby", n, n + 1000, None, posted, None, deleted, None, None)


class RecentServer:
    def __init__(self, posts: list[CommunityMessage]) -> None:
        self.posts = posts
        self.limits: list[int] = []

    async def recent(self, token: str, limit: int = 25) -> list[CommunityMessage]:
        self.limits.append(limit)
        return sorted(self.posts, key=lambda p: p.id, reverse=True)[:limit]


async def _backfill(
    policy: BackfillPolicy, posts: list[CommunityMessage]
) -> tuple[list[int], int, list[int]]:
    server = RecentServer(posts)
    seen: list[int] = []

    async def handle(message: CommunityMessage) -> None:
        seen.append(message.id)

    info = RoomInfo("lobby", "Lobby", "", 1, 4242, 1, None, True, True, True)
    seqno = await backfill_room(
        server,
        "lobby",
        info,
        policy,
        handle,
        now=lambda: 100 * 86_400.0,  # type: ignore[arg-type]
    )
    return seen, seqno, server.limits


async def test_backfill_takes_the_newest_posts_oldest_first_and_commits_the_join_seqno() -> None:
    posts = [_post(n, 99 * 86_400.0) for n in range(1, 501)]
    posts[495] = _post(496, 99 * 86_400.0, deleted=True)
    seen, seqno, limits = await _backfill(BackfillPolicy(10), posts)
    assert seen == [491, 492, 493, 494, 495, 497, 498, 499, 500]
    assert seqno == 4242 and limits == [10]


async def test_backfill_days_and_none_and_the_server_cap() -> None:
    posts = [_post(n, (90 + n) * 86_400.0 / 1) for n in range(1, 10)]  # day 91..99
    seen, _, _ = await _backfill(BackfillPolicy(50, days=3), posts)
    assert seen == [7, 8, 9]  # posted on days 97..99, within 3 days of day 100
    seen, seqno, limits = await _backfill(BackfillPolicy(0), posts)
    assert (seen, seqno, limits) == ([], 4242, [])
    _, _, limits = await _backfill(BackfillPolicy(256), posts)
    assert limits == [256]
    assert BackfillPolicy(-1).replays_all and not BackfillPolicy(0).replays_all


# --- the boxes -----------------------------------------------------------------------------


class FakeDMs:
    def __init__(self, owners: Sequence[str], fail_at: int | None = None) -> None:
        self.bot_owners = tuple(owners)
        self.fail_at = fail_at
        self.handled: list[tuple[int, bool, tuple[str, ...]]] = []

    async def handle_entry(self, client: Any, owners: Sequence[str], entry: InboxEntry) -> None:
        if entry.id == self.fail_at:
            raise MatrixConnectionError("the homeserver is away")
        self.handled.append((entry.id, entry.outgoing, tuple(owners)))


class FakeClient:
    server = SERVER

    def __init__(self) -> None:
        self.committed: list[tuple[int, int]] = []

    async def commit_boxes(self, inbox_id: int, outbox_id: int) -> None:
        self.committed.append((inbox_id, outbox_id))


def _entry(n: int, outgoing: bool = False) -> InboxEntry:
    message = VisibleMessage(body=f"m{n}")
    return InboxEntry(n, 1.0, PEER, PEER, outgoing, None, message, None)


class NoPortals:
    async def get_many(self, ids: list[int]) -> dict[int, PortalRecord]:
        return {}


class NoLogins:
    def cached_logins(self) -> list[Any]:
        return []


def _boxes(dms: FakeDMs, enabled: bool = True) -> CommunityBoxes:
    async def members(room_id: str) -> list[str]:
        return []

    return CommunityBoxes(
        dms=dms,  # type: ignore[arg-type]
        logins=NoLogins(),  # type: ignore[arg-type]
        portals=NoPortals(),  # type: ignore[arg-type]
        cursors=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
        members=members,
        enabled=enabled,
    )


def _result(inbox: Sequence[int], outbox: Sequence[int]) -> PollResult:
    return PollResult(
        SERVER,
        {},
        tuple(_entry(n) for n in inbox),
        tuple(_entry(n, True) for n in outbox),
        max([0, *inbox]),
        max([0, *outbox]),
    )


async def test_the_bots_boxes_go_to_the_admins_in_order_then_are_committed() -> None:
    dms, client = FakeDMs(["@admin:hs"]), FakeClient()
    boxes = _boxes(dms)
    await boxes._boxes(client, dms.bot_owners, _result([3, 1, 2], [4]))  # type: ignore[arg-type]
    assert dms.handled == [
        (1, False, ("@admin:hs",)),
        (2, False, ("@admin:hs",)),
        (3, False, ("@admin:hs",)),
        (4, True, ("@admin:hs",)),
    ]
    assert client.committed == [(3, 4)]
    assert not boxes.blocks_requests(is_bot=True) and not boxes.blocks_requests(is_bot=False)


async def test_a_transient_failure_holds_the_box_at_the_item_before() -> None:
    dms, client = FakeDMs(["@admin:hs"], fail_at=2), FakeClient()
    more = await _boxes(dms)._boxes(client, dms.bot_owners, _result([1, 2, 3], []))  # type: ignore[arg-type]
    assert [h[0] for h in dms.handled] == [1]
    assert client.committed == [(1, 0)] and not more


async def test_with_nobody_to_show_them_to_the_boxes_move_on_and_posts_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))
    dms, client = FakeDMs([]), FakeClient()
    boxes = _boxes(dms)
    await boxes.after_poll(client, _result([1, 2], []), [])  # type: ignore[arg-type]
    assert dms.handled == [] and client.committed == [(2, 0)]
    assert boxes.blocks_requests(is_bot=True) and not boxes.blocks_requests(is_bot=False)
    off = _boxes(FakeDMs(["@admin:hs"]), enabled=False)
    assert off.blocks_requests(is_bot=True) and off.blocks_requests(is_bot=False)
    assert boxes_module.READERS_REFRESH_S > 0
