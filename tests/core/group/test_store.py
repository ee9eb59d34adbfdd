"""The database-backed group store (bridge/core/group/store.py): everything is per identity,
so two identities in one group never share cursors, seen hashes or memberships, and a
restarted store reads back exactly what was kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.core.group.store import DbGroupStore, SealedGroupRepo
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.groups import GroupRepo
from bridge.session.groups.store import Membership, RawGroupMessage

BOT = "05" + "a1" * 32
LOGIN = "05" + "b2" * 32
GROUP = "03" + "c3" * 32


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    database = Database.from_url(url)
    try:
        yield database
    finally:
        await database.close()


def stores(db: Database) -> tuple[DbGroupStore, DbGroupStore]:
    groups, cursors = GroupRepo(db), CursorRepo(db)
    return DbGroupStore(BOT, groups, cursors), DbGroupStore(LOGIN, groups, cursors)


async def test_cursors_and_seen_hashes_are_per_identity(db: Database) -> None:
    bot, login = stores(db)
    await bot.set_last_hash("node1", GROUP, 11, "h-bot")
    assert await bot.get_last_hash("node1", GROUP, 11) == "h-bot"
    assert await login.get_last_hash("node1", GROUP, 11) is None
    await bot.mark_seen(GROUP, "m1", 0)
    assert await bot.seen(GROUP, ["m1", "m2"]) == {"m1"}
    assert await login.seen(GROUP, ["m1", "m2"]) == set()
    # A new store over the same database (a restart) reads the same state back.
    again, _ = stores(db)
    assert await again.get_last_hash("node1", GROUP, 11) == "h-bot"
    assert await again.seen(GROUP, ["m1"]) == {"m1"}


async def test_memberships_and_raw_messages_round_trip(db: Database) -> None:
    bot, login = stores(db)
    invited = Membership(GROUP, "Team", auth_data=b"\x01" * 100, inviter=LOGIN, invite_timestamp=5)
    await bot.save_membership(invited)
    promoted = Membership(GROUP, "Team", seed=b"\x02" * 32, accepted=True)
    await login.save_membership(promoted)
    assert await bot.memberships() == [invited]
    assert await login.memberships() == [promoted]
    keys = RawGroupMessage(12, "k1", 10, 99, b"keys")
    info = RawGroupMessage(13, "i1", 11, 99, b"info")
    for message in (keys, info, keys):
        await bot.add_raw(GROUP, message)
    assert await bot.raw_messages(GROUP) == [keys, info]
    assert await login.raw_messages(GROUP) == []


async def test_membership_secrets_are_encrypted_at_rest(db: Database) -> None:
    vault = SeedVault(b"\x07" * 32)
    sealed = SealedGroupRepo(db, vault)
    store = DbGroupStore(BOT, sealed, CursorRepo(db))
    auth, seed = b"AUTH-" + b"\x11" * 95, b"SEED-" + b"\x22" * 27
    kept = Membership(GROUP, "Team", auth_data=auth, seed=seed, inviter=LOGIN, accepted=True)
    await store.save_membership(kept)
    # The row as stored (the plain repository reads the columns unchanged) holds neither.
    raw = await GroupRepo(db).membership(BOT, GROUP)
    assert raw is not None
    for secret in (auth, seed):
        assert secret not in raw.auth_data
        assert raw.seed is not None and secret not in raw.seed
    assert vault.decrypt(raw.auth_data) == auth and vault.decrypt(raw.seed) == seed
    # Read back through the sealed repository (a restart), everything is as it was saved.
    assert await DbGroupStore(BOT, SealedGroupRepo(db, vault), CursorRepo(db)).memberships() == [
        kept
    ]
    # No auth data and no seed stay empty (nothing to hide, nothing to decrypt).
    await store.save_membership(Membership(GROUP, "Team"))
    opened = await sealed.membership(BOT, GROUP)
    assert opened is not None and opened.auth_data == b"" and opened.seed is None
    # The record's repr never shows them either.
    assert "AUTH-" not in repr(await sealed.memberships())


async def test_cursor_nodes_tell_which_node_moved_last_across_a_restart(db: Database) -> None:
    clock = iter(range(1000, 2000, 10))
    cursors = CursorRepo(db, clock=lambda: next(clock))
    bot = DbGroupStore(BOT, GroupRepo(db), cursors)
    assert await bot.cursor_nodes(GROUP) == {}
    await bot.set_last_hash("node1", GROUP, 11, "a")
    await bot.set_last_hash("node1", GROUP, 12, "b")
    await bot.set_last_hash("node2", GROUP, 11, "c")
    await bot.set_last_hash("node1", "03" + "d4" * 32, 11, "other group")
    # The cache (filled by the first read, before any cursor existed) follows every write.
    assert await bot.cursor_nodes(GROUP) == {"node1": 1010, "node2": 1020}
    # A restarted store reads the same back from the rows, in one query per group.
    again = DbGroupStore(BOT, GroupRepo(db), CursorRepo(db))
    assert await again.cursor_nodes(GROUP) == {"node1": 1010, "node2": 1020}
    assert await again.get_last_hash("node1", GROUP, 12) == "b"
    assert await again.get_last_hash("node2", GROUP, 12) is None
    # Another identity's cursors of the same group are not ours.
    _, login = stores(db)
    assert await login.cursor_nodes(GROUP) == {}


async def test_a_failed_cursor_write_is_read_again_from_the_database(db: Database) -> None:
    cursors = CursorRepo(db)
    bot = DbGroupStore(BOT, GroupRepo(db), cursors)
    await bot.set_last_hash("node1", GROUP, 11, "a")
    assert await bot.get_last_hash("node1", GROUP, 11) == "a"
    real = cursors.set_cursor

    async def landed_then_failed(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise RuntimeError("connection lost after the commit")

    cursors.set_cursor = landed_then_failed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await bot.set_last_hash("node1", GROUP, 11, "b")
    cursors.set_cursor = real  # type: ignore[method-assign]
    # Memory was dropped, not kept at "a": the database (which has "b") is read again.
    assert await bot.get_last_hash("node1", GROUP, 11) == "b"
