"""The real groups v2 admin (bridge/session/groups/admin.py) on the devnet, with the project's
member client (GroupsClient) as independent members: invite and accept, messages, promote,
remove with rekey, Info changes, destroy, two admins at once, and what the storage node
refuses (docs/groups-v2.md §1.13, §3.4-§3.6, §5.4, §5.5, §7)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.session.avatars import decrypt_avatar_from_url
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.events import (
    GroupDestroyedEvent,
    GroupInfoEvent,
    GroupInviteEvent,
    GroupMessageEvent,
    GroupPromotedEvent,
    GroupRemovedEvent,
)
from bridge.session.groups.group_messages import NoMatchingKey, decrypt_group_message
from bridge.session.groups.group_state import NS_INFO, NS_MEMBERS, NS_MESSAGES
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.members import SendStatus
from bridge.session.groups.subaccount import admin_request_params
from bridge.session.keys import Identity
from bridge.session.messages import Profile, VisibleMessage
from bridge.session.snode.errors import Unauthorized
from bridge.session.snode.results import Call, parse_retrieve
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_world import Member, new_member
from tests.sessionnet.helpers import wait_for


@pytest.fixture
async def world() -> AsyncIterator[DmWorld]:
    async with dm_world() as w:
        yield w


async def _admin(world: DmWorld, name: str) -> GroupAdmin:
    identity = Identity.generate()
    dm = await world.client(identity, start=False, profile=Profile("Admin"))
    return await GroupAdmin.create(
        world.snode, identity, name, dm=dm, files=world.files, own_name="Admin"
    )


async def _join(admin: GroupAdmin, member: Member, *, history: bool = False) -> None:
    sid = member.identity.session_id
    await admin.invite(
        sid, member.dm.profile.display_name if member.dm.profile else "", history=history
    )
    await member.inbox.wait(GroupInviteEvent)
    assert await member.groups.accept(admin.group_id) is not None

    async def accepted() -> bool:
        await admin.poll_messages()  # the InviteResponse clears "I" (§7.3 4)
        entry = admin.members.get(sid)
        return entry is not None and entry.invite is None

    await wait_for(accepted, timeout=15, step=0.1)


def _store(ns: int, sign: Any, data: bytes) -> Call:
    encoded = base64.b64encode(data).decode()
    return Call(
        "store", lambda _n, now: sign("store", ns, now, timestamp=now, ttl=60_000, data=encoded)
    )


async def test_create_invite_promote_remove_with_rekey_info_and_destroy(world: DmWorld) -> None:
    admin = await _admin(world, "Team")
    gid = admin.group_id
    created = admin.created()
    assert created.seed == admin.group.seed and created.name == "Team"
    me = admin.members.get(admin.identity.session_id)
    assert me is not None and me.admin and me.promotion is None
    alice = await new_member(world, "Alice")
    bob = await new_member(world, "Bob")
    await _join(admin, alice)
    await _join(admin, bob, history=True)
    assert {m.session_id for m in admin.members} == {
        admin.identity.session_id,
        alice.identity.session_id,
        bob.identity.session_id,
    }

    # Messages both ways: the admin posts, the members read; a member posts, the admin reads.
    await admin.post(VisibleMessage(body="welcome"))
    await wait_for(lambda: "welcome" in alice.inbox.bodies() and "welcome" in bob.inbox.bodies())
    sent = await alice.groups.send_text(gid, "thanks")

    async def admin_read() -> bool:
        return any(
            isinstance(e, GroupMessageEvent) and e.hash == sent.hash
            for e in await admin.poll_messages()
        )

    await wait_for(admin_read, timeout=10, step=0.1)

    # A member (subaccount) may not write Info: the devnet answers 401 as the real node.
    alice_state = alice.groups.poller.state(gid.value)
    assert alice_state is not None
    membership = await alice.groups.membership(gid)
    assert membership is not None
    sign = request_signer(alice.identity, gid, auth_data=membership.auth_data)
    _, results = await world.snode.batch(gid.value, [_store(NS_INFO, sign, b"x" * 64)])
    assert results[0].code == 401
    # Neither may anyone sign "as the group" without the group key.
    forged = admin_request_params(secrets.token_bytes(32), "store", NS_MEMBERS, 0)
    fake = Call(
        "store",
        lambda _n, now: {
            **admin_request_params(
                secrets.token_bytes(32),
                "store",
                NS_MEMBERS,
                now,
                timestamp=now,
                ttl=60_000,
                data="eA==",
            ),
            "pubkey": gid.value,
        },
    )
    assert forged["pubkey"] != gid.value
    _, results = await world.snode.batch(gid.value, [fake])
    assert results[0].code == 401

    # Promote Bob: he gets the seed 1:1, runs his own admin, which accepts the promotion.
    await admin.promote(bob.identity.session_id)
    await bob.inbox.wait(GroupPromotedEvent)
    bob_membership = await bob.groups.membership(gid)
    assert bob_membership is not None and bob_membership.seed == admin.group.seed
    bob_admin = GroupAdmin(world.snode, bob.identity, bob_membership.seed, dm=bob.dm)
    await bob_admin.sync()
    await admin.sync()
    entry = admin.members.get(bob.identity.session_id)
    assert entry is not None and entry.admin and entry.promotion is None

    # Info by the second admin reaches the member.
    await bob_admin.set_name("Renamed")
    await wait_for(
        lambda: any(e.info.name == "Renamed" for e in alice.inbox.of(GroupInfoEvent)), timeout=10
    )
    await admin.set_disappearing_timer(3600)
    await admin.set_picture(b"\x89PNG avatar")
    await admin.sync()
    assert admin.info.disappearing_timer == 3600 and admin.info.picture is not None

    def pictured() -> bool:
        return any(e.info.picture is not None for e in alice.inbox.of(GroupInfoEvent))

    await wait_for(pictured, timeout=10)
    picture = next(e.info.picture for e in alice.inbox.of(GroupInfoEvent) if e.info.picture)
    assert picture is not None  # the member downloads and decrypts it as the apps do
    blob = await world.files.download(picture.url)
    assert decrypt_avatar_from_url(blob, picture.key, picture.url) == b"\x89PNG avatar"

    # Remove Alice with a rekey: she is told, revoked, and reads nothing sent after.
    old_generation = admin.keyring.current_generation
    await admin.remove([alice.identity.session_id], delete_messages=True)
    assert admin.keyring.current_generation == (old_generation or 0) + 1
    assert admin.members.get(alice.identity.session_id) is None
    await alice.inbox.wait(GroupRemovedEvent, timeout=10)
    after = await admin.post(VisibleMessage(body="after removal"))
    await wait_for(lambda: "after removal" in bob.inbox.bodies(), timeout=10)
    node, body = await world.snode.call(gid.value, admin._retrieve(NS_MESSAGES))
    raw = next(m for m in parse_retrieve(node, NS_MESSAGES, body).messages if m.hash == after.hash)
    with pytest.raises(NoMatchingKey):
        decrypt_group_message(raw.data, alice_state.keyring.decryption_keys(), gid.key)
    assert "after removal" not in alice.inbox.bodies()
    assert sent.hash not in {m.hash for m in parse_retrieve(node, NS_MESSAGES, body).messages}
    with pytest.raises(Unauthorized):  # her token is revoked (§5.5)
        await world.snode.call(gid.value, _store(NS_MESSAGES, sign, b"y" * 64))

    # Destroy: the remaining member sees it.
    await admin.destroy()
    await bob.inbox.wait(GroupDestroyedEvent, timeout=10)
    for m in (alice, bob):
        await m.groups.stop()


async def test_two_admins_writing_at_once_lose_nothing(
    world: DmWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _admin(world, "Both")
    second = GroupAdmin(world.snode, Identity.generate(), first.group.seed)
    x, y = Identity.generate().session_id, Identity.generate().session_id

    async def stale() -> None:
        """Both admins read the group *before* either writes: a guaranteed race."""

    async def race(edit_first: Any, edit_second: Any) -> None:
        await first.sync()
        await second.sync()
        with monkeypatch.context() as patch:
            patch.setattr(first, "sync", stale)
            patch.setattr(second, "sync", stale)
            await asyncio.gather(edit_first, edit_second)

    await race(first.set_name("Named by first"), second.set_description("by second"))
    one, two = first.configs[NS_INFO].current, second.configs[NS_INFO].current
    assert one.seqno == two.seqno and one.hash != two.hash  # the same seqno, twice
    await race(first.invite(x, "X"), second.invite(y, "Y"))
    assert first.keyring.current_generation == second.keyring.current_generation
    await first.sync()  # merges, and rekeys: two keys of one generation (§3.6)
    await second.sync()
    await first.sync()
    for admin in (first, second):
        assert admin.info.name == "Named by first"
        assert admin.info.description == "by second"
        assert {x, y} <= {m.session_id for m in admin.members}
        assert not admin.keyring.needs_rekey()
    assert first.configs[NS_INFO].current.hash == second.configs[NS_INFO].current.hash
    assert first.configs[NS_MEMBERS].current.hash == second.configs[NS_MEMBERS].current.hash
    assert first.keyring.encryption_key() == second.keyring.encryption_key()
    # Invite statuses survive merging: sent by the first (1:1 client), failed by the second.
    sent, failed = first.members.get(x), first.members.get(y)
    assert sent is not None and sent.invite is SendStatus.SENT
    assert failed is not None and failed.invite is SendStatus.FAILED


async def test_member_leaving_is_removed_with_a_rekey(world: DmWorld) -> None:
    admin = await _admin(world, "Leavers")
    carol = await new_member(world, "Carol")
    await _join(admin, carol)
    generation = admin.keyring.current_generation
    await carol.groups.leave(admin.group_id)

    async def gone() -> bool:
        await admin.poll_messages()  # MemberLeft: §7.5 without the MemberChange (§7.6)
        return admin.members.get(carol.identity.session_id) is None

    await wait_for(gone, timeout=10, step=0.1)
    assert admin.keyring.current_generation == (generation or 0) + 1
    await carol.groups.stop()
