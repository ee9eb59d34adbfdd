"""GroupPoller against a fake swarm: §6.3 processing order (risk #10), batching per swarm,
cursors and acknowledgement, restarts from stored bytes, removal detection (§7.10)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

from bridge.ids import GroupID
from bridge.session.groups.events import (
    GroupMessageEvent,
    GroupRemovedEvent,
    MessageEvent,
    RemovalReason,
)
from bridge.session.groups.group_messages import encrypt_group_message
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.keyring import GroupKeyring
from bridge.session.groups.keys import GroupKeyPair
from bridge.session.groups.member_send import request_signer
from bridge.session.groups.multi_encrypt import make_kicked_note
from bridge.session.groups.poller import GroupPoller
from bridge.session.groups.store import MemoryGroupStore
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.snode import auth
from bridge.session.snode.clock import NetworkClock
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, SubResult

NODE = ServiceNode("127.0.0.1", 1, "aa" * 32)
OTHER = ServiceNode("127.0.0.1", 2, "bb" * 32)


class FakeSwarm:
    """Answers retrieves from per-(group, ns) lists; counts batches per node."""

    def __init__(self) -> None:
        self.clock = NetworkClock()
        self.messages: dict[tuple[str, int], list[tuple[str, int, bytes]]] = {}
        self.swarm_of: dict[str, ServiceNode] = {}
        self.batches: dict[str, int] = {}
        self.sizes: list[int] = []
        self.refuse: set[tuple[str, int]] = set()
        self.routes: dict[str, ServiceNode] = {}  # the client's idea of a group's swarm
        self.calls: list[list[str]] = []
        self.expired: list[tuple[str, tuple[str, ...]]] = []

    def put(self, group: str, ns: int, data: bytes) -> str:
        h = auth.message_hash(group, ns, data)
        self.messages.setdefault((group, ns), []).append((h, self.clock.now_ms(), data))
        return h

    async def get_swarm(self, account: str, *, refresh: bool = False) -> list[ServiceNode]:
        if account not in self.routes or refresh:
            self.routes[account] = self.swarm_of.get(account, NODE)
        return [self.routes[account]]

    async def batch(
        self,
        account: str,
        requests: Sequence[Call],
        *,
        sequence: bool = False,
        prefer: ServiceNode | None = None,
        mixed_accounts: bool = False,
    ) -> tuple[ServiceNode, list[SubResult]]:
        node = self.routes.get(account) or self.swarm_of.get(account, NODE)
        self.batches[node.pubkey_ed25519] = self.batches.get(node.pubkey_ed25519, 0) + 1
        self.sizes.append(len(requests))
        self.calls.append([r.method for r in requests])
        assert len(requests) <= 20 and mixed_accounts
        return node, [
            self._answer(node, r.method, r.params(node, self.clock.now_ms())) for r in requests
        ]

    def update_swarm(self, account: str, body: object) -> list[ServiceNode]:
        assert isinstance(body, dict)
        node = next(n for n in (NODE, OTHER) if n.pubkey_ed25519 == body["swarm"])
        self.routes[account] = node
        return [node]

    def _answer(self, node: ServiceNode, method: str, params: dict[str, Any]) -> SubResult:
        owner = self.swarm_of.get(params["pubkey"], NODE)
        if owner != node:  # the account lives elsewhere: 421 with its swarm (§6.2)
            return SubResult(421, {"snodes": [], "swarm": owner.pubkey_ed25519})
        if method == "expire":
            self.expired.append((params["pubkey"], tuple(params["messages"])))
            return SubResult(200, {"swarm": {}})
        return self._retrieve(params)

    def _retrieve(self, params: dict[str, Any]) -> SubResult:
        group, ns = params["pubkey"], params["namespace"]
        if (group, ns) in self.refuse:
            return SubResult(401, "retrieve signature verification failed")
        stored = self.messages.get((group, ns), [])
        hashes = [h for h, _, _ in stored]
        last = params.get("last_hash")
        start = hashes.index(last) + 1 if last in hashes else 0
        out = [
            {
                "hash": h,
                "timestamp": t,
                "expiration": t + 10**9,
                "data": base64.b64encode(d).decode(),
            }
            for h, t, d in stored[start:]
        ]
        return SubResult(200, {"messages": out, "more": False})


class Group:
    """An admin-side group with one member."""

    def __init__(self, member: Identity) -> None:
        self.pair = GroupKeyPair(secrets.token_bytes(32))
        self.id = GroupID.from_key(self.pair.public)
        self.keyring = GroupKeyring(self.pair.public, group=self.pair)
        self.member = member
        self.auth = make_member_auth_data(self.pair.seed, member.session_id)

    def rekey(self) -> bytes:
        rekey = self.keyring.rekey([self.member.session_id])
        self.keyring.load_message(rekey.message, "x" * 43, 1)
        return rekey.message

    def message(self, body: str, ts: int) -> bytes:
        admin = Identity.generate()
        key = self.keyring.encryption_key()
        return encrypt_group_message(admin, self.pair.public, key, VisibleMessage(body=body), ts)

    async def follow(self, poller: GroupPoller) -> None:
        await poller.add(
            GroupState(self.id, self.member),
            request_signer(self.member, self.id, auth_data=self.auth),
        )


async def test_a_key_arriving_in_the_same_batch_decrypts_the_message() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    keys = group.rekey()
    # The message is stored (and retrieved, ns 11) before the key (ns 12, retrieved last).
    h = swarm.put(group.id.value, 11, group.message("needs the new key", 1_700_000_000_000))
    swarm.put(group.id.value, 12, keys)
    poller = GroupPoller(swarm, MemoryGroupStore())
    await group.follow(poller)
    events = await poller.poll_once()
    messages = [e for e in events if isinstance(e, GroupMessageEvent)]
    assert [m.hash for m in messages] == [h]
    assert isinstance(messages[0].content, VisibleMessage)
    assert messages[0].content.body == "needs the new key"


async def test_one_batch_per_swarm_chunked_by_the_subrequest_limit() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    groups = [Group(member) for _ in range(9)]
    for i, g in enumerate(groups):
        swarm.swarm_of[g.id.value] = NODE if i < 3 else OTHER
    poller = GroupPoller(swarm, MemoryGroupStore())
    for g in groups:
        await g.follow(poller)
    await poller.poll_once()
    # 3 groups fit in one batch on NODE; 6 groups need 2 batches (4 x 5 = 20) on OTHER.
    assert swarm.batches == {NODE.pubkey_ed25519: 1, OTHER.pubkey_ed25519: 2}
    assert sorted(swarm.sizes) == [10, 15, 20]


async def test_cursor_moves_only_after_ack_and_restart_rebuilds_keys() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    swarm.put(group.id.value, 12, group.rekey())
    h1 = swarm.put(group.id.value, 11, group.message("one", 1_700_000_000_001))
    h2 = swarm.put(group.id.value, 11, group.message("two", 1_700_000_000_002))
    store = MemoryGroupStore()
    poller = GroupPoller(swarm, store)
    await group.follow(poller)
    events = [e for e in await poller.poll_once() if isinstance(e, GroupMessageEvent)]
    assert [e.hash for e in events] == [h1, h2]
    assert not await poller.poll_once()  # in flight: not handed out twice
    await poller.ack(events[0])
    assert await store.get_last_hash(NODE.pubkey_ed25519, group.id.value, 11) == h1
    # "Crash": a new poller on the same store; keys come from the stored bytes, h2 again.
    swarm.messages.pop((group.id.value, 12))
    again = GroupPoller(swarm, store)
    await group.follow(again)
    state = again.state(group.id.value)
    assert state is not None and state.ready
    redelivered = [e for e in await again.poll_once() if isinstance(e, GroupMessageEvent)]
    assert [e.hash for e in redelivered] == [h2]


async def test_acks_out_of_order_keep_the_cursor_contiguous() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    swarm.put(group.id.value, 12, group.rekey())
    for i in range(3):
        swarm.put(group.id.value, 11, group.message(str(i), 1_700_000_000_000 + i))
    store = MemoryGroupStore()
    poller = GroupPoller(swarm, store)
    await group.follow(poller)
    events: list[MessageEvent] = [
        e for e in await poller.poll_once() if isinstance(e, GroupMessageEvent)
    ]
    await poller.ack(events[2])
    assert await store.get_last_hash(NODE.pubkey_ed25519, group.id.value, 11) is None
    await poller.ack(events[0])
    assert await store.get_last_hash(NODE.pubkey_ed25519, group.id.value, 11) == events[0].hash
    await poller.ack(events[1])
    assert await store.get_last_hash(NODE.pubkey_ed25519, group.id.value, 11) == events[2].hash


async def test_revoked_subaccount_is_reported_removed_and_polling_stops() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    swarm.put(group.id.value, 12, group.rekey())
    poller = GroupPoller(swarm, MemoryGroupStore())
    await group.follow(poller)
    await poller.poll_once()
    swarm.refuse |= {(group.id.value, ns) for ns in (11, 12, 13, 14)}
    events = await poller.poll_once()
    assert events == [GroupRemovedEvent(group.id, RemovalReason.REVOKED)]
    assert poller.group_ids == []


async def test_kicked_note_removes_us_but_not_others() -> None:
    swarm, member = FakeSwarm(), Identity.generate()
    group = Group(member)
    swarm.put(group.id.value, 12, group.rekey())
    other = Identity.generate()
    swarm.put(group.id.value, -11, make_kicked_note(group.pair.seed, [other.session_id], 0))
    poller = GroupPoller(swarm, MemoryGroupStore())
    await group.follow(poller)
    assert not [e for e in await poller.poll_once() if isinstance(e, GroupRemovedEvent)]
    swarm.put(group.id.value, -11, make_kicked_note(group.pair.seed, [member.session_id], 0))
    events = await poller.poll_once()
    assert events == [GroupRemovedEvent(group.id, RemovalReason.KICKED_NOTE)]
