"""Groups v2 upkeep on the devnet: members keep keys/configs alive past their 30-day TTL
(docs/groups-v2.md §3.6, §6.2) under the storage node's real ``expire`` rules (§5.4), a group that
moved swarm is re-routed alone (session-protocol §6.14), removal noticed from Members (§7.10),
and Info delete-before ``d``/``D`` (§2.1)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

import pytest

from bridge.session.groups.events import GroupMessageEvent, GroupRemovedEvent, RemovalReason
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.members import Member as MemberEntry
from bridge.session.groups.members import SendStatus
from bridge.session.groups.poll_plan import EVERY_CYCLE, keepalive_hashes
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import MemoryGroupStore
from bridge.session.groups.subaccount import admin_request_params, make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import Attachment, VisibleMessage
from bridge.session.snode.results import Call
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import new_admin, new_member
from tests.sessionnet.test_groups_devnet import _join, _member_call

DAY = 86_400_000


@pytest.fixture
async def world() -> AsyncIterator[DmWorld]:
    async with dm_world() as w:
        yield w


async def _with_member(admin: DevnetGroupAdmin, member: Identity) -> bytes:
    admin.members[member.session_id] = MemberEntry(member.session_id, invite=SendStatus.SENT)
    await admin.push(rekey=True)
    return make_member_auth_data(admin.group.seed, member.session_id)


async def _follow(poller: GroupPoller, admin: DevnetGroupAdmin, member: Identity) -> None:
    auth_data = make_member_auth_data(admin.group.seed, member.session_id)
    signer = request_signer(member, admin.group_id, auth_data=auth_data)
    await poller.add(GroupState(admin.group_id, member), signer)


async def _stored(world: DmWorld, admin: DevnetGroupAdmin, ns: int) -> dict[str, int]:
    """Hash → expiry of what the swarm holds in ``ns`` (admin-signed retrieve)."""
    seed = admin.group.seed
    call = Call("retrieve", lambda _n, now: admin_request_params(seed, "retrieve", ns, now))
    _, body = await world.snode.call(admin.group_id.value, call)
    return {m["hash"]: m["expiration"] for m in body["messages"]}


def _expires(world: DmWorld) -> int:
    return sum(n.stats[("expire", 200)] for n in world.net.nodes)


async def test_members_keep_keys_and_configs_alive_past_the_ttl(world: DmWorld) -> None:
    member = Identity.generate()
    kept, lost = await new_admin(world, "kept"), await new_admin(world, "lost")
    for admin in (kept, lost):
        await _with_member(admin, member)
    poller = GroupPoller(world.snode, MemoryGroupStore(), schedule=EVERY_CYCLE)
    await _follow(poller, kept, member)  # nobody keeps "lost" alive
    await poller.poll_once()
    await poller.poll_once()  # hashes known: the first extension
    state = poller.state(kept.group_id.value)
    assert state is not None
    hashes = keepalive_hashes(state)
    assert len(hashes) == 4  # keys generations 0 and 1, current Info, current Members
    try:
        world.net.set_skew(20 * DAY)  # the devnet's clock: 20 days later
        before = _expires(world)
        for _ in range(4):  # the first poll resyncs the network clock (406, §6.14)
            await poller.poll_once()
            if _expires(world) > before:
                break
        assert _expires(world) > before
        world.net.set_skew(40 * DAY)  # past the 30-day TTL of the original stores
        now = world.snode.clock.now_ms()
        alive: dict[str, int] = {}
        for ns in (12, 13, 14):
            alive |= await _stored(world, kept, ns)
        assert set(hashes) <= set(alive)
        assert all(alive[h] > now for h in hashes)
        for ns in (12, 13, 14):
            assert await _stored(world, lost, ns) == {}  # expired: keys gone for good
        await poller.poll_once()
        assert state.ready and state.info.name == "kept"
    finally:
        world.net.set_skew(0)


async def test_storage_node_expire_rules_for_subaccounts(world: DmWorld) -> None:
    admin = await new_admin(world)
    member = Identity.generate()
    auth_data = await _with_member(admin, member)
    gid = admin.group_id
    h = next(iter(await _stored(world, admin, 13)))
    now = world.snode.clock.now_ms()

    async def expire(auth: bytes, expiry: int, **mode: bool) -> tuple[int, object]:
        fields = {"messages": [h], "expiry": expiry, **mode}
        return await _member_call(world, member, auth, gid, "expire", None, **fields)

    async def expiry_now() -> int:
        code, body = await _member_call(
            world, member, auth_data, gid, "get_expiries", None, messages=[h]
        )
        assert code == 200 and isinstance(body, dict)
        expiry: int = body["expiries"][h]
        return expiry

    start = await expiry_now()
    read_only = make_member_auth_data(admin.group.seed, member.session_id, write=False)
    assert (await expire(read_only, now + DAY, extend=True))[0] == 401  # needs WRITE (§5.4)
    assert (await expire(auth_data, now + DAY, shorten=True))[0] == 400  # no DELETE
    code, _ = await expire(auth_data, now + DAY)  # plain: forced extend-only
    assert code == 200 and await expiry_now() == start
    code, _ = await expire(auth_data, now + 31 * DAY, extend=True)  # capped at 30 days
    assert code == 200 and start < await expiry_now() <= world.snode.clock.now_ms() + 30 * DAY
    with_delete = make_member_auth_data(admin.group.seed, member.session_id, delete=True)
    await admin.push(extra=[admin._tokens("unrevoke_subaccount", [member.session_id])])
    code, _ = await expire(with_delete, now + DAY, shorten=True)
    assert code == 200 and await expiry_now() == now + DAY
    await admin.push(extra=[admin._tokens("revoke_subaccount", [member.session_id])])
    assert (await expire(auth_data, now + 2 * DAY, extend=True))[0] == 401  # revoked


async def test_a_group_that_moved_swarm_is_rerouted_and_the_others_keep_polling(
    world: DmWorld,
) -> None:
    member = Identity.generate()
    stay = await new_admin(world, "stay")
    home = world.net.swarm_for(stay.group_id.value)
    move = await new_admin(world, "move")
    for _ in range(30):  # a second group on the same swarm, so they share a batch
        if world.net.swarm_for(move.group_id.value) is home:
            break
        move = await new_admin(world, "move")
    assert world.net.swarm_for(move.group_id.value) is home
    poller = GroupPoller(world.snode, MemoryGroupStore(), schedule=EVERY_CYCLE)
    for admin in (stay, move):
        await _with_member(admin, member)
        await _follow(poller, admin, member)
    await poller.poll_once()
    await stay.post(VisibleMessage(body="still here"))
    await move.post(VisibleMessage(body="moved"))
    world.net.move_account(move.group_id.value, world.net.other_swarm(move.group_id.value))
    batches = sum(n.http_requests["batch"] for n in home.nodes)
    events = await poller.poll_once()
    assert _bodies(events) == ["still here"]
    assert sum(n.http_requests["batch"] for n in home.nodes) == batches + 1  # one batch
    assert poller.more
    events = await poller.poll_once()
    assert _bodies(events) == ["moved"]
    assert sorted(poller.group_ids) == sorted([stay.group_id.value, move.group_id.value])


def _bodies(events: Sequence[object]) -> list[str | None]:
    return [
        e.content.body
        for e in events
        if isinstance(e, GroupMessageEvent) and isinstance(e.content, VisibleMessage)
    ]


async def test_dropped_from_members_is_noticed_once(world: DmWorld) -> None:
    admin = await new_admin(world)
    alice = await new_member(world, "Alice")
    try:
        await _join(admin, alice, "Alice")
        del admin.members[alice.identity.session_id]
        await admin.push()  # Members without Alice; same key, no kicked note, no revoke
        (removed,) = await alice.inbox.wait(GroupRemovedEvent)
        assert removed.reason is RemovalReason.NOT_IN_MEMBERS
        assert admin.group_id.value not in alice.groups.poller.group_ids
        membership = await alice.groups.membership(admin.group_id)
        assert membership is not None and membership.removed
        admin.info = dataclasses.replace(admin.info, name="later")
        await admin.push()
        await alice.groups._poll_cycle()  # no longer polled: nothing more can arrive
        assert len(alice.inbox.of(GroupRemovedEvent)) == 1
    finally:
        await alice.groups.stop(2)


async def test_info_delete_before_drops_and_flags(world: DmWorld) -> None:
    admin = await new_admin(world)
    member = Identity.generate()
    await _with_member(admin, member)
    pointer = Attachment(url="http://files.invalid/1", key=b"k" * 64, content_type="image/png")
    old = await admin.post(VisibleMessage(body="old"))
    d = old.timestamp // 1000 + 1  # Info times are seconds (§2.1, risk #13)
    admin._last_ts = d * 1000  # next posts at or after d (a second ahead at most)
    pic = await admin.post(VisibleMessage(body="pic", attachments=(pointer,)))
    big_d = pic.timestamp // 1000 + 1
    admin._last_ts = big_d * 1000
    await admin.post(VisibleMessage(body="new pic", attachments=(pointer,)))
    admin.info = dataclasses.replace(admin.info, delete_before=d, delete_attach_before=big_d)
    await admin.push()
    poller = GroupPoller(world.snode, MemoryGroupStore(), schedule=EVERY_CYCLE)
    await _follow(poller, admin, member)
    events = [e for e in await poller.poll_once() if isinstance(e, GroupMessageEvent)]
    assert _bodies(events) == ["pic", "new pic"]  # "old" is before d: not delivered
    assert [e.attachments_expired for e in events] == [True, False]
