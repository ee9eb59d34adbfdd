"""Groups v2 on the devnet: invite, join, read and post as members; removal; restart; many
groups per swarm; processing order; the storage node's namespace and subaccount rules."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.ids import GroupID
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupInfoEvent,
    GroupInviteEvent,
    GroupMembersEvent,
    GroupMessageEvent,
    GroupReactionEvent,
    GroupRemovedEvent,
    GroupUnsendEvent,
    RemovalReason,
)
from bridge.session.groups.group_messages import NoMatchingKey, decrypt_group_message
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.members import Member as MemberEntry
from bridge.session.groups.members import SendStatus
from bridge.session.groups.poller import GROUPS_PER_BATCH, GroupPoller
from bridge.session.groups.store import Membership, MemoryGroupStore
from bridge.session.groups.subaccount import (
    admin_request_params,
    make_member_auth_data,
    member_request_params,
    subaccount_token,
)
from bridge.session.keys import Identity
from bridge.session.messages import GroupInviteResponse, Quote, VisibleMessage
from bridge.session.snode.results import Call
from tests.sessionnet.dm_setup import DmWorld, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import GroupInbox, Member, new_admin, new_member
from tests.sessionnet.helpers import wait_for


@pytest.fixture
async def world() -> AsyncIterator[DmWorld]:
    async with dm_world() as w:
        yield w


async def _join(admin: DevnetGroupAdmin, member: Member, name: str) -> None:
    await admin.invite(member.identity.session_id, name)
    (invite,) = await member.inbox.wait(GroupInviteEvent)
    assert invite.group == admin.group_id and invite.inviter == admin.identity.session_id
    response = await member.groups.accept(admin.group_id)
    assert response is not None


async def test_members_join_post_react_unsend_and_get_removed(world: DmWorld) -> None:
    admin = await new_admin(world, "Team")
    alice = await new_member(world, "Alice")
    bob = await new_member(world, "Bob")
    try:
        await _join(admin, alice, "Alice")
        await _join(admin, bob, "Bob")  # Bob joins without history (rekey, §7.2)
        info = (await alice.inbox.wait(GroupInfoEvent))[-1]
        assert info.info.name == "Team"
        await wait_for(
            lambda: any(
                isinstance(e.content, GroupInviteResponse) and e.sender == bob.identity.session_id
                for e in alice.inbox.of(GroupMessageEvent)
            )
        )

        # Alice posts; Bob reads it, replies with a quote and reacts; Alice sees both.
        hello = await alice.groups.send_text(admin.group_id, "hello group")
        await wait_for(lambda: "hello group" in bob.inbox.bodies())
        msg = next(e for e in bob.inbox.of(GroupMessageEvent) if e.hash == hello.hash)
        assert msg.sender == alice.identity.session_id and msg.timestamp == hello.timestamp
        quote = Quote(hello.timestamp, alice.identity.session_id.value, "hello group")
        await bob.groups.send_text(admin.group_id, "hi Alice", quote=quote)
        await bob.groups.send_reaction(
            admin.group_id, alice.identity.session_id, hello.timestamp, "👍"
        )
        (reaction,) = await alice.inbox.wait(GroupReactionEvent)
        assert reaction.sender == bob.identity.session_id
        assert reaction.reaction.emoji == "👍"
        assert reaction.reaction.target_timestamp == hello.timestamp
        await wait_for(lambda: "hi Alice" in alice.inbox.bodies())
        reply = next(
            e.content
            for e in alice.inbox.of(GroupMessageEvent)
            if isinstance(e.content, VisibleMessage) and e.content.body == "hi Alice"
        )
        assert reply.quote is not None and reply.quote.timestamp == hello.timestamp
        assert reply.profile is not None and reply.profile.display_name == "Bob"

        # An attachment from Bob, downloaded and decrypted by Alice.
        await bob.groups.send_attachment(admin.group_id, b"\x89PNG data", "a.png", "image/png")
        await wait_for(
            lambda: any(
                isinstance(e.content, VisibleMessage) and e.content.attachments
                for e in alice.inbox.of(GroupMessageEvent)
            )
        )
        pointer = next(
            e.content.attachments[0]
            for e in alice.inbox.of(GroupMessageEvent)
            if isinstance(e.content, VisibleMessage) and e.content.attachments
        )
        assert await alice.dm.download_attachment(pointer) == b"\x89PNG data"

        # Alice unsends her message: Bob gets the unsend and the (unsigned) content deletion.
        await alice.groups.unsend(admin.group_id, hello.timestamp, hello.hash)
        (unsend,) = await bob.inbox.wait(GroupUnsendEvent)
        assert unsend.sender == alice.identity.session_id
        assert unsend.target_timestamp == hello.timestamp
        (deleted,) = await bob.inbox.wait(GroupContentDeletedEvent)
        assert deleted.message_hashes == (hello.hash,) and not deleted.by_admin

        # Name change by the admin reaches both.
        await admin.set_name("Team 2")
        await wait_for(lambda: alice.inbox.of(GroupInfoEvent)[-1].info.name == "Team 2")
        await wait_for(lambda: bob.inbox.of(GroupInfoEvent)[-1].info.name == "Team 2")

        # Bob is removed: kicked note + revoke + rekey without him.
        await admin.remove(bob.identity.session_id)
        (removed,) = await bob.inbox.wait(GroupRemovedEvent)
        assert removed.reason is RemovalReason.KICKED_NOTE
        assert (await bob.groups.membership(admin.group_id)).removed  # type: ignore[union-attr]
        members = (await alice.inbox.wait(GroupMembersEvent))[-1].members
        await wait_for(
            lambda: (
                alice.inbox.of(GroupMembersEvent)[-1].members.get(bob.identity.session_id) is None
            )
        )
        assert members is not None
        secret = await admin.post(VisibleMessage(body="after Bob left"))
        await wait_for(lambda: "after Bob left" in alice.inbox.bodies())
        # Bob's keys (everything he ever received) no longer open new messages...
        bob_state = GroupState(admin.group_id, bob.identity)
        for raw in await bob.store.raw_messages(admin.group_id.value):
            if raw.namespace == 12:
                bob_state.keyring.load_message(raw.data, raw.hash, raw.timestamp)
        blob = await _fetch(world, admin, 11, secret.hash)
        with pytest.raises(NoMatchingKey):
            decrypt_group_message(blob, bob_state.keyring.decryption_keys(), admin.group_id.key)
        # ...and his subaccount is refused.
        bob_auth = make_member_auth_data(admin.group.seed, bob.identity.session_id)
        code, _ = await _member_call(world, bob.identity, bob_auth, admin.group_id, "retrieve", 11)
        assert code == 401

        # Admin deletes Alice's content: signed, honoured as admin.
        await admin.delete_member_content([alice.identity.session_id])
        await wait_for(lambda: any(e.by_admin for e in alice.inbox.of(GroupContentDeletedEvent)))
        by_admin = next(e for e in alice.inbox.of(GroupContentDeletedEvent) if e.by_admin)
        assert by_admin.member_session_ids == (alice.identity.session_id,)
        assert not bob.inbox.of(GroupContentDeletedEvent)[1:]  # Bob stopped polling
    finally:
        await alice.groups.stop(2)
        await bob.groups.stop(2)


async def _fetch(world: DmWorld, admin: DevnetGroupAdmin, ns: int, hash_: str) -> bytes:
    seed = admin.group.seed
    call = Call("retrieve", lambda _n, now: admin_request_params(seed, "retrieve", ns, now))
    _, body = await world.snode.call(admin.group_id.value, call)
    found = [m for m in body["messages"] if m["hash"] == hash_]
    return base64.b64decode(found[0]["data"])


async def _member_call(
    world: DmWorld,
    identity: Identity,
    auth_data: bytes,
    group: GroupID,
    method: str,
    ns: int | None,
    **fields: Any,
) -> tuple[int, Any]:
    """One subaccount-signed request straight to a node of the group's swarm."""
    node = (await world.snode.get_swarm(group.value))[0]
    now = world.snode.clock.now_ms()
    params = member_request_params(identity, auth_data, group, method, ns, now, **fields)
    _, results = await world.snode.batch(
        group.value, [Call(method, lambda _n, _t: params)], prefer=node
    )
    return results[0].code, results[0].body


async def test_restart_in_the_middle_of_a_burst_loses_and_repeats_nothing(
    world: DmWorld,
) -> None:
    admin = await new_admin(world)
    alice = await new_member(world, "Alice")
    await _join(admin, alice, "Alice")

    async def slow(_event: object) -> None:
        await asyncio.sleep(0.01)  # a consumer that commits each event takes a while

    alice.groups.subscribe(slow)
    burst = [(await admin.post(VisibleMessage(body=f"m{i}"))).hash for i in range(30)]
    try:
        await wait_for(lambda: len(_hashes(alice.inbox, burst)) >= 10)
    finally:
        await alice.groups.stop(2)  # mid-burst: the event in hand is finished and acked
    first = _hashes(alice.inbox, burst)
    assert 10 <= len(first) < len(burst)
    restarted = GroupsClient(alice.identity, world.snode, alice.store, poll_interval=0.05)
    inbox = GroupInbox()
    restarted.subscribe(inbox)
    await restarted.start()
    try:
        await wait_for(lambda: len(first) + len(_hashes(inbox, burst)) >= len(burst))
    finally:
        await restarted.stop(2)
    second = _hashes(inbox, burst)
    assert not set(first) & set(second), "a message was delivered twice"
    assert sorted(first + second) == sorted(burst), "a message was lost"
    assert len(first + second) == len(burst)


def _hashes(inbox: GroupInbox, among: list[str]) -> list[str]:
    return [e.hash for e in inbox.of(GroupMessageEvent) if e.hash in among]


async def test_a_hundred_groups_share_batches_per_swarm(world: DmWorld) -> None:
    member = Identity.generate()
    store = MemoryGroupStore()
    poller = GroupPoller(world.snode, store)
    admin_dm = await world.client(start=False)
    by_swarm: dict[int, int] = {}
    for i in range(100):
        admin = await DevnetGroupAdmin.create(world.snode, admin_dm, Identity.generate(), f"g{i}")
        admin.members[member.session_id] = MemberEntry(member.session_id, invite=SendStatus.SENT)
        await admin.push(rekey=True)
        auth_data = make_member_auth_data(admin.group.seed, member.session_id)
        await store.save_membership(Membership(admin.group_id.value, f"g{i}", auth_data))
        signer = request_signer(member, admin.group_id, auth_data=auth_data)
        await poller.add(GroupState(admin.group_id, member), signer)
        swarm = world.net.swarm_for(admin.group_id.value)
        by_swarm[swarm.swarm_id] = by_swarm.get(swarm.swarm_id, 0) + 1
    await poller.poll_once()  # first cycle: discovers swarms, keys and configs

    # What the poller asks of each swarm, counted where it asks: the nodes' own counters
    # would add the transport's retries (a batch that timed out on a loaded machine is sent
    # again to the next node), which are not what this test is about.
    asked: list[tuple[int, list[str]]] = []
    batch = world.snode.batch

    async def counting_batch(account: str, requests: Any, **kwargs: Any) -> Any:
        asked.append((world.net.swarm_for(account).swarm_id, [c.method for c in requests]))
        return await batch(account, requests, **kwargs)

    world.snode.batch = counting_batch  # type: ignore[method-assign]

    # Second cycle: the keys/config hashes are known now, so each group's hourly expiry
    # extension (§6.2, poll_plan) rides along: 5 retrieves + 1 expire per group, packed into
    # ceil(6 n / 20) batches per swarm. Third cycle: retrieves only, ceil(n / 4) batches.
    for expire_per_group in (1, 0):
        asked.clear()
        retrieved_before = sum(n.stats[("retrieve", 200)] for n in world.net.nodes)
        events = await poller.poll_once()
        assert not events  # nothing new
        for swarm in world.net.swarms:
            n = by_swarm.get(swarm.swarm_id, 0)
            sent = [methods for swarm_id, methods in asked if swarm_id == swarm.swarm_id]
            assert len(sent) == math.ceil(n * (5 + expire_per_group) / 20)
            assert all(len(methods) <= 20 for methods in sent)
            if not expire_per_group:
                assert len(sent) == math.ceil(n / GROUPS_PER_BATCH)  # 4 groups x 5 namespaces
        methods = [m for _, ms in asked for m in ms]
        assert methods.count("retrieve") == 100 * 5
        assert methods.count("expire") == 100 * expire_per_group
        # The nodes answered every retrieve (more only if the transport sent one again).
        retrieved = sum(n.stats[("retrieve", 200)] for n in world.net.nodes) - retrieved_before
        assert retrieved >= 100 * 5
    for gid in poller.group_ids:
        state = poller.state(gid)
        assert state is not None and state.ready and state.info.name.startswith("g")


async def test_key_arriving_in_the_same_batch_as_the_message(world: DmWorld) -> None:
    """§10.2 #10 on the devnet: rekey + message stored before one poll; it still decrypts."""
    admin = await new_admin(world)
    member = Identity.generate()
    admin.members[member.session_id] = MemberEntry(member.session_id, invite=SendStatus.SENT)
    await admin.push(rekey=True)
    auth_data = make_member_auth_data(admin.group.seed, member.session_id)
    poller = GroupPoller(world.snode, MemoryGroupStore())
    await poller.add(
        GroupState(admin.group_id, member),
        request_signer(member, admin.group_id, auth_data=auth_data),
    )
    await poller.poll_once()
    await admin.push(rekey=True)  # generation 2, unknown to the member
    sent = await admin.post(VisibleMessage(body="new key"))
    assert admin.keyring.current_generation == 2
    events = await poller.poll_once()
    messages = [e for e in events if isinstance(e, GroupMessageEvent)]
    assert [m.hash for m in messages] == [sent.hash]
    assert poller.state(admin.group_id.value).keyring.current_generation == 2  # type: ignore[union-attr]


async def test_storage_node_namespace_and_subaccount_rules(world: DmWorld) -> None:
    admin = await new_admin(world)
    member = Identity.generate()
    sid = member.session_id
    admin.members[sid] = MemberEntry(sid, invite=SendStatus.SENT)
    await admin.push(rekey=True)
    gid = admin.group_id
    auth_data = make_member_auth_data(admin.group.seed, sid)
    now = world.snode.clock.now_ms()
    data = base64.b64encode(b"x" * 40).decode()
    store = {"timestamp": now, "ttl": 3_600_000, "data": data}
    for ns in (11,):
        assert (await _member_call(world, member, auth_data, gid, "store", ns, **store))[0] == 200
    for ns in (12, 13, 14, -11):
        code, _ = await _member_call(world, member, auth_data, gid, "store", ns, **store)
        assert code == 401, ns
    for ns in (11, 12, 13, 14, -11):
        code, _ = await _member_call(world, member, auth_data, gid, "retrieve", ns, last_hash="")
        assert code == 200, ns
    # A read-only token cannot write.
    read_only = make_member_auth_data(admin.group.seed, sid, write=False)
    code, _ = await _member_call(world, member, read_only, gid, "store", 11, **store)
    assert code == 401
    # Another member's auth data does not verify for us.
    other = Identity.generate()
    code, _ = await _member_call(world, other, auth_data, gid, "retrieve", 11, last_hash="")
    assert code == 401
    # Only the admin may revoke; a revoked token reads -11 but nothing else.
    token = subaccount_token(admin.group.seed, sid).hex()
    code, _ = await _member_call(
        world, member, auth_data, gid, "revoke_subaccount", None, revoke=[token]
    )
    assert code == 401
    await admin.push(extra=[admin._tokens("revoke_subaccount", [sid])])
    for ns, want in ((11, 401), (12, 401), (13, 401), (14, 401), (-11, 200)):
        code, _ = await _member_call(world, member, auth_data, gid, "retrieve", ns, last_hash="")
        assert code == want, ns
    assert (await _member_call(world, member, auth_data, gid, "store", 11, **store))[0] == 401
    await admin.push(extra=[admin._tokens("unrevoke_subaccount", [sid])])
    code, _ = await _member_call(world, member, auth_data, gid, "retrieve", 11, last_hash="")
    assert code == 200


class _AckFails(MemoryGroupStore):
    """A store whose ``mark_seen`` fails while ``down`` (a database outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failures = 0

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("database unreachable")
        await super().mark_seen(account, hash_, expiry)


async def test_messages_of_a_failed_cycle_are_handed_out_again(
    world: DmWorld, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await new_admin(world)
    store = _AckFails()
    alice = await new_member(world, "Alice", store=store)
    await _join(admin, alice, "Alice")
    store.down = True
    burst = [(await admin.post(VisibleMessage(body=f"m{i}"))).hash for i in range(5)]
    try:
        await wait_for(lambda: store.failures >= 2)  # two cycles failed on their first ack
        store.down = False
        # Before release_unacked the messages after the failed ack stayed "in flight": never
        # handed out again, and the cursor stuck behind them.
        await wait_for(lambda: set(burst) <= set(_hashes(alice.inbox, burst)))
    finally:
        await alice.groups.stop(2)
    failed = [r for r in caplog.records if "group poll cycle failed" in r.getMessage()]
    assert len(failed) >= 2
    assert [r.exc_info is not None for r in failed][:2] == [True, False]  # one traceback
