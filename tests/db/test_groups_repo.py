"""The groups v2 tables: memberships per identity and the received keys/config messages, kept
once per hash in the order received (docs/groups-v2.md §7), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

from bridge.db.engine import Database
from bridge.db.repos.groups import GroupMembershipRecord, GroupRawRecord, GroupRepo

BOT = "05" + "aa" * 32
LOGIN = "05" + "bb" * 32
GROUP = "03" + "cc" * 32


async def test_memberships_are_per_identity_and_replaced(db: Database) -> None:
    repo = GroupRepo(db)
    invite = GroupMembershipRecord(
        BOT, GROUP, "Team", auth_data=b"\x01" * 100, inviter=LOGIN, invite_timestamp=7
    )
    await repo.save_membership(invite)
    await repo.save_membership(dataclasses.replace(invite, session_id=LOGIN, seed=b"\x02" * 32))
    assert await repo.membership(BOT, GROUP) == invite
    accepted = dataclasses.replace(invite, accepted=True, name="Team 2")
    await repo.save_membership(accepted)
    assert await repo.memberships(BOT) == [accepted]
    both = await repo.memberships()
    assert [(m.session_id, m.seed) for m in both] == [(BOT, None), (LOGIN, b"\x02" * 32)]
    assert await repo.membership(BOT, "03" + "dd" * 32) is None


async def test_raw_messages_once_per_hash_in_order(db: Database) -> None:
    repo = GroupRepo(db)
    second = GroupRawRecord(13, "h-b", 2, 20, b"two")
    first = GroupRawRecord(12, "h-a", 1, 10, b"one")
    assert await repo.add_raw(BOT, GROUP, second) is True
    assert await repo.add_raw(BOT, GROUP, first) is True
    assert await repo.add_raw(BOT, GROUP, second) is False  # the same hash again
    assert await repo.add_raw(LOGIN, GROUP, first) is True  # another identity keeps its own
    assert await repo.raw_messages(BOT, GROUP) == [second, first]
    assert await repo.raw_messages(LOGIN, GROUP) == [first]
    assert await repo.raw_messages(BOT, "03" + "dd" * 32) == []
