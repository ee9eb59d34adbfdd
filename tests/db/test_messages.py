"""Message and reaction mappings."""

from __future__ import annotations

import pytest

from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos import Repositories

ALICE = "05" + "a1" * 32


@pytest.fixture
async def portal(repos: Repositories) -> PortalRecord:
    return await repos.portals.get_or_create(PortalKind.GROUP, "03" + "cc" * 32)


async def test_record_and_look_up_message(repos: Repositories, portal: PortalRecord) -> None:
    msg = await repos.messages.add_message(
        portal.id, "$e1", "hash1", timestamp=42, sender_session_id=ALICE
    )
    assert msg is not None
    assert (msg.part, msg.edit_count, msg.sender_session_id) == (0, 0, ALICE)
    assert await repos.messages.get_by_mxid("$e1") == msg
    assert await repos.messages.get_by_session_key(portal.id, "hash1") == msg
    assert await repos.messages.get_by_session_key(portal.id, "hash1", part=1) is None
    assert await repos.messages.get_by_mxid("$nope") is None


async def test_message_dedup(repos: Repositories, portal: PortalRecord) -> None:
    assert await repos.messages.add_message(portal.id, "$e1", "hash1", timestamp=1)
    assert await repos.messages.add_message(portal.id, "$e2", "hash1", timestamp=1) is None
    assert await repos.messages.add_message(portal.id, "$e1", "hash2", timestamp=1) is None
    assert await repos.messages.get_by_mxid("$e2") is None


async def test_multi_part_messages(repos: Repositories, portal: PortalRecord) -> None:
    for part in (1, 0, 2):
        added = await repos.messages.add_message(
            portal.id, f"$p{part}", "hash1", part=part, timestamp=7
        )
        assert added is not None
    parts = await repos.messages.get_parts(portal.id, "hash1")
    assert [p.part for p in parts] == [0, 1, 2]
    assert [p.mxid for p in parts] == ["$p0", "$p1", "$p2"]


async def test_outbound_message_gets_its_session_key_later(
    repos: Repositories, portal: PortalRecord
) -> None:
    first = await repos.messages.add_message(
        portal.id, "$m1", None, timestamp=5, sender_mxid="@u:hs"
    )
    second = await repos.messages.add_message(portal.id, "$m2", None, timestamp=6)
    assert first is not None and second is not None  # NULL keys never collide
    await repos.messages.set_session_key(first.id, "swarmhash")
    found = await repos.messages.get_by_session_key(portal.id, "swarmhash")
    assert found is not None and found.mxid == "$m1" and found.sender_mxid == "@u:hs"


async def test_edit_count(repos: Repositories, portal: PortalRecord) -> None:
    msg = await repos.messages.add_message(portal.id, "$e1", "k", timestamp=1)
    assert msg is not None
    assert await repos.messages.bump_edit_count(msg.id) == 1
    assert await repos.messages.bump_edit_count(msg.id) == 2
    again = await repos.messages.get_by_mxid("$e1")
    assert again is not None and again.edit_count == 2


async def test_reactions(repos: Repositories, portal: PortalRecord) -> None:
    msg = await repos.messages.add_message(portal.id, "$e1", "k", timestamp=1)
    assert msg is not None
    thumbs = await repos.messages.add_reaction(portal.id, "$r1", msg.id, ALICE, "👍")
    heart = await repos.messages.add_reaction(portal.id, "$r2", msg.id, "@u:hs", "❤️")
    assert thumbs is not None and heart is not None
    assert thumbs.emoji == "👍" and thumbs.target_message_id == msg.id
    assert await repos.messages.find_reaction(msg.id, ALICE, "👍") == thumbs
    assert await repos.messages.find_reaction(msg.id, ALICE, "❤️") is None
    assert await repos.messages.get_reaction_by_mxid("$r2") == heart
    assert await repos.messages.list_reactions(msg.id) == [thumbs, heart]
    # Same sender, target and emoji again (e.g. re-delivery) is refused; so is a reused event.
    assert await repos.messages.add_reaction(portal.id, "$r3", msg.id, ALICE, "👍") is None
    assert await repos.messages.add_reaction(portal.id, "$r1", msg.id, ALICE, "🎉") is None
    assert await repos.messages.remove_reaction(thumbs.id)
    assert not await repos.messages.remove_reaction(thumbs.id)
    assert await repos.messages.find_reaction(msg.id, ALICE, "👍") is None


async def test_deleting_a_message_drops_its_reactions(
    repos: Repositories, portal: PortalRecord
) -> None:
    msg = await repos.messages.add_message(portal.id, "$e1", "k", timestamp=1)
    assert msg is not None
    assert await repos.messages.add_reaction(portal.id, "$r1", msg.id, ALICE, "👍")
    assert await repos.messages.delete_message(msg.id)
    assert await repos.messages.get_reaction_by_mxid("$r1") is None
    assert not await repos.messages.delete_message(msg.id)
