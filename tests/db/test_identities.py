"""Portals, ghosts, Matrix users and logins."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy.exc import IntegrityError

from bridge.db.records import GhostRecord, PortalKind
from bridge.db.repos import Repositories
from tests.db.conftest import START_MS, FakeClock

COMMUNITY_KEY = "https://open.example|lokinet|a03c"
DM_KEY = "05" + "aa" * 32 + "|05" + "bb" * 32
GROUP_KEY = "03" + "cc" * 32


async def test_portal_get_or_create_and_lookups(repos: Repositories) -> None:
    portal = await repos.portals.get_or_create(PortalKind.COMMUNITY, COMMUNITY_KEY, name="Loki")
    assert portal.kind is PortalKind.COMMUNITY
    assert portal.session_key == COMMUNITY_KEY
    assert portal.name == "Loki"
    assert portal.mxid is None
    assert not portal.relay_enabled and not portal.encrypted
    assert portal.created_at == START_MS
    again = await repos.portals.get_or_create(PortalKind.COMMUNITY, COMMUNITY_KEY, name="other")
    assert again == portal
    assert await repos.portals.get_by_key(PortalKind.COMMUNITY, COMMUNITY_KEY) == portal
    assert await repos.portals.get_by_id(portal.id) == portal
    # The same key under another kind is another portal.
    other = await repos.portals.get_or_create(PortalKind.GROUP, COMMUNITY_KEY)
    assert other.id != portal.id
    assert await repos.portals.get_by_key(PortalKind.DIRECT, DM_KEY) is None


async def test_portal_concurrent_creation_yields_one_row(repos: Repositories) -> None:
    created = await asyncio.gather(
        *(repos.portals.get_or_create(PortalKind.GROUP, GROUP_KEY) for _ in range(8))
    )
    assert len({p.id for p in created}) == 1


async def test_portal_update_and_mxid(repos: Repositories, clock: FakeClock) -> None:
    portal = await repos.portals.get_or_create(PortalKind.GROUP, GROUP_KEY)
    bridged = await repos.portals.set_mxid(portal.id, "!g:hs")
    assert bridged.mxid == "!g:hs"
    assert await repos.portals.get_by_mxid("!g:hs") == bridged
    changed = await repos.portals.update(
        dataclasses.replace(bridged, name="G", topic="t", avatar_mxc="mxc://a", relay_enabled=True)
    )
    assert (changed.name, changed.topic, changed.avatar_mxc) == ("G", "t", "mxc://a")
    assert changed.relay_enabled
    assert await repos.portals.list_active() == [changed]
    assert await repos.portals.list_active(PortalKind.DIRECT) == []
    clock.now += 5
    gone = await repos.portals.mark_unbridged(portal.id)
    assert gone.unbridged_at == START_MS + 5
    assert gone.mxid == "!g:hs"  # the mapping is kept for history
    assert await repos.portals.list_active() == []
    rebridged = await repos.portals.set_mxid(portal.id, "!g2:hs")
    assert rebridged.unbridged_at is None


async def test_portal_mxid_is_unique(repos: Repositories) -> None:
    a = await repos.portals.get_or_create(PortalKind.GROUP, GROUP_KEY)
    b = await repos.portals.get_or_create(PortalKind.DIRECT, DM_KEY)
    await repos.portals.set_mxid(a.id, "!same:hs")
    with pytest.raises(IntegrityError):
        await repos.portals.set_mxid(b.id, "!same:hs")


async def test_portal_update_of_missing_portal(repos: Repositories) -> None:
    portal = await repos.portals.get_or_create(PortalKind.GROUP, GROUP_KEY)
    with pytest.raises(LookupError):
        await repos.portals.update(dataclasses.replace(portal, id=portal.id + 100))
    with pytest.raises(LookupError):
        await repos.portals.mark_unbridged(portal.id + 100)


async def test_portal_relay_login_is_cleared_when_login_goes(repos: Repositories) -> None:
    login = await repos.users.add_login("05" + "11" * 32, b"cipher", mxid="@u:hs")
    assert login is not None
    portal = await repos.portals.get_or_create(PortalKind.GROUP, GROUP_KEY)
    await repos.portals.update(dataclasses.replace(portal, relay_login_id=login.id))
    assert await repos.users.remove_login(login.id)
    after = await repos.portals.get_by_id(portal.id)
    assert after is not None and after.relay_login_id is None


async def test_ghost_upsert(repos: Repositories, clock: FakeClock) -> None:
    sid = "05" + "ab" * 32
    assert await repos.ghosts.get(sid) is None
    stored = await repos.ghosts.upsert(GhostRecord(session_id=sid, mxid=f"@session_{sid}:hs"))
    assert stored.updated_at == START_MS
    assert await repos.ghosts.get(sid) == stored
    clock.now += 1
    renamed = await repos.ghosts.upsert(
        dataclasses.replace(stored, displayname="Alice", name_set=True, registered=True)
    )
    assert renamed.updated_at == START_MS + 1
    assert await repos.ghosts.get(sid) == renamed
    assert await repos.ghosts.get_by_mxid(f"@session_{sid}:hs") == renamed


async def test_matrix_users(repos: Repositories) -> None:
    assert await repos.users.get_user("@u:hs") is None
    user = await repos.users.ensure_user("@u:hs")
    assert user.management_room is None and user.created_at == START_MS
    assert await repos.users.ensure_user("@u:hs") == user
    updated = await repos.users.set_management_room("@u:hs", "!mgmt:hs")
    assert updated.management_room == "!mgmt:hs"
    assert await repos.users.get_user("@u:hs") == updated
    created = await repos.users.set_management_room("@new:hs", "!m2:hs")
    assert created.mxid == "@new:hs" and created.management_room == "!m2:hs"


async def test_logins(repos: Repositories) -> None:
    sid1, sid2, bot = ("05" + c * 32 for c in ("01", "02", "0b"))
    first = await repos.users.add_login(sid1, b"\x00seed1", mxid="@u:hs", label="phone")
    second = await repos.users.add_login(sid2, b"\x00seed2", mxid="@u:hs")
    own = await repos.users.add_login(bot, b"bot", mxid=None, is_bot=True)
    assert first is not None and second is not None and own is not None
    assert first.encrypted_seed == b"\x00seed1" and first.label == "phone"
    assert not first.is_bot and own.is_bot and own.mxid is None
    assert await repos.users.list_logins("@u:hs") == [first, second]
    assert await repos.users.get_login(first.id) == first
    assert await repos.users.get_login_by_session_id(sid2) == second
    assert await repos.users.get_bot_login() == own
    assert await repos.users.get_user("@u:hs") is not None
    # One Session account belongs to at most one login, whoever asks.
    assert await repos.users.add_login(sid1, b"x", mxid="@other:hs") is None
    assert await repos.users.remove_login(first.id)
    assert not await repos.users.remove_login(first.id)
    assert await repos.users.list_logins("@u:hs") == [second]
