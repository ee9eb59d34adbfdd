"""The identity map (links + logins as a view) and the link codes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bridge.db.records import PortalKind
from bridge.db.repos import Repositories
from bridge.db.repos.links import CodeOrigin, IdentityKind, LinkRepo, Redeemed
from tests.db.conftest import START_MS, FakeClock

ALICE_SID = "05" + "a1" * 32
BOB_SID = "05" + "b2" * 32
LOGIN_SID = "05" + "c3" * 32
ALICE = "@alice:hs"
BOB = "@bob:hs"
TTL = 60_000


@pytest.fixture
def links(repos: Repositories, clock: FakeClock) -> LinkRepo:
    return LinkRepo(repos.db, clock)


async def test_logins_appear_in_the_map_as_kind_login(
    repos: Repositories, links: LinkRepo, clock: FakeClock
) -> None:
    await repos.users.ensure_user(ALICE)
    await repos.users.add_login(LOGIN_SID, b"sealed", mxid=ALICE)
    await repos.users.add_login("05" + "dd" * 32, b"sealed", mxid=None, is_bot=True)
    clock.now += 10
    made = await links.add_link(ALICE_SID, ALICE)
    assert made is not None and made.kind is IdentityKind.LINK
    mine = await links.identities(mxid=ALICE)
    assert [(r.session_id, r.kind, r.created_at) for r in mine] == [
        (LOGIN_SID, IdentityKind.LOGIN, START_MS),
        (ALICE_SID, IdentityKind.LINK, START_MS + 10),
    ]
    # The bot's identity is nobody's; a login is read, not copied into identity_link.
    assert len(await links.identities()) == 2
    counts = await links.counts_by_kind()
    assert counts == {IdentityKind.LOGIN: 1, IdentityKind.LINK: 1, IdentityKind.BRIDGE_IDENTITY: 0}
    login = await links.owner_of(LOGIN_SID)
    assert login is not None and login.kind is IdentityKind.LOGIN
    # Logging out removes the login from the map at once.
    record = await repos.users.get_login_by_session_id(LOGIN_SID)
    assert record is not None
    await repos.users.remove_login(record.id)
    assert await links.owner_of(LOGIN_SID) is None


async def test_a_session_id_belongs_to_one_matrix_user(links: LinkRepo) -> None:
    first = await links.add_link(ALICE_SID, ALICE)
    assert first is not None
    assert await links.add_link(ALICE_SID, ALICE) == first
    assert await links.add_link(ALICE_SID, BOB) is None
    with pytest.raises(ValueError, match="logins"):
        await links.add_link(BOB_SID, BOB, IdentityKind.LOGIN)
    assert await links.add_link(BOB_SID, ALICE, IdentityKind.BRIDGE_IDENTITY) is not None
    # unlink removes links only, never a bridge-made identity.
    assert await links.remove_links(ALICE) == [ALICE_SID]
    remaining = await links.identities(mxid=ALICE)
    assert [r.kind for r in remaining] == [IdentityKind.BRIDGE_IDENTITY]


async def test_codes_spend_once_even_concurrently(links: LinkRepo, clock: FakeClock) -> None:
    code = await links.add_code(
        CodeOrigin.MATRIX, "h" * 64, mxid=ALICE, session_id=ALICE_SID, ttl_ms=TTL, room_id="!r"
    )
    assert code.expires_at == START_MS + TTL and code.used_at is None
    results = await asyncio.gather(*(links.redeem(code) for _ in range(5)))
    assert sorted(results).count(Redeemed.LINKED) == 1
    assert set(results) == {Redeemed.LINKED, Redeemed.SPENT}
    [stored] = await links.codes_for(CodeOrigin.MATRIX, session_id=ALICE_SID)
    assert stored.used_at == START_MS
    owner = await links.owner_of(ALICE_SID)
    assert owner is not None and owner.mxid == ALICE


async def test_expired_and_taken_codes(links: LinkRepo, clock: FakeClock) -> None:
    late = await links.add_code(
        CodeOrigin.SESSION, "a" * 64, mxid=ALICE, session_id=ALICE_SID, ttl_ms=TTL
    )
    clock.now += TTL
    assert await links.redeem(late) is Redeemed.SPENT
    taken = await links.add_code(
        CodeOrigin.SESSION, "b" * 64, mxid=ALICE, session_id=BOB_SID, ttl_ms=TTL
    )
    await links.add_link(BOB_SID, BOB)
    assert await links.redeem(taken) is Redeemed.TAKEN
    [unspent] = await links.codes_for(CodeOrigin.SESSION, session_id=BOB_SID)
    assert unspent.used_at is None  # refused before it was spent


async def test_code_counts_and_pruning(links: LinkRepo, clock: FakeClock) -> None:
    for sid in (ALICE_SID, BOB_SID):
        await links.add_code(CodeOrigin.MATRIX, "c" * 64, mxid=ALICE, session_id=sid, ttl_ms=TTL)
    await links.add_code(CodeOrigin.SESSION, "d" * 64, mxid=ALICE, session_id=BOB_SID, ttl_ms=TTL)
    assert await links.codes_made_since(CodeOrigin.MATRIX, ALICE, START_MS - 1) == 2
    assert await links.codes_made_since(CodeOrigin.SESSION, BOB_SID, START_MS - 1) == 1
    assert await links.codes_made_since(CodeOrigin.MATRIX, ALICE, START_MS) == 0
    assert len(await links.codes_for(CodeOrigin.MATRIX, mxid=ALICE)) == 2
    assert await links.prune_codes(START_MS + TTL) == 0
    assert await links.prune_codes(START_MS + TTL + 1) == 3
    assert await links.codes_for(CodeOrigin.MATRIX, mxid=ALICE) == []


async def test_last_written_counts_only_messages_from_session(
    repos: Repositories, links: LinkRepo
) -> None:
    portal = await repos.portals.get_or_create(PortalKind.GROUP, "03" + "ee" * 32)
    add = repos.messages.add_message
    await add(portal.id, "$a1", "h1", timestamp=10, sender_session_id=ALICE_SID)
    await add(portal.id, "$a2", "h2", timestamp=30, sender_session_id=ALICE_SID)
    # From Matrix: Bob's message went out as his login (or relayed by the bot's identity).
    await add(portal.id, "$b1", "h3", timestamp=40, sender_session_id=LOGIN_SID, sender_mxid=BOB)
    await add(portal.id, "$a3", "h4", timestamp=50, sender_session_id=ALICE_SID, sender_mxid=BOB)
    assert await links.last_written(portal.id) == {ALICE_SID: 30}
