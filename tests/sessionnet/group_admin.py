"""A small groups v2 *admin* for the devnet (test helper; the bridge's admin code comes later).

It writes exactly what an official admin client writes (docs/groups-v2.md §1-§3, §7), using the
pure writers of :mod:`bridge.session.groups`: Info/Members config messages (``next_message`` +
``seal_message``), keys messages (``GroupKeyring.rekey``), member auth data (§5.2), kicked
notes (§4.4) and admin-signed control messages (§7.11). Every push is one ``sequence`` to the
group swarm, signed with the group key (§5.4), keys first (§3.4, §7 "push configs").
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import Sequence
from typing import Any

from bridge.ids import GroupID, SessionID
from bridge.session.client import SessionClient
from bridge.session.dm_events import SentMessage
from bridge.session.groups.config import (
    INFO_DOMAIN,
    MEMBERS_DOMAIN,
    ConfigMessage,
    empty_message,
    next_message,
    parse_message,
    seal_message,
)
from bridge.session.groups.group_state import (
    NS_INFO,
    NS_KEYS,
    NS_MEMBERS,
    NS_REVOKED,
    GroupState,
    delete_content_signed_string,
)
from bridge.session.groups.info import Info, info_data
from bridge.session.groups.keys import GroupKeyPair
from bridge.session.groups.member_send import GroupSent, post_group_message, request_signer
from bridge.session.groups.members import Member, Members, SendStatus, members_data
from bridge.session.groups.multi_encrypt import make_kicked_note
from bridge.session.groups.subaccount import (
    admin_request_params,
    make_member_auth_data,
    subaccount_token,
)
from bridge.session.keys import Identity
from bridge.session.messages import (
    GroupDeleteMemberContent,
    GroupInfoChange,
    GroupInfoChangeType,
    GroupInvite,
    GroupMemberChange,
    GroupMemberChangeType,
    Message,
)
from bridge.session.snode import auth
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call
from bridge.session.snode.rpc import SnodeClient

CONFIG_TTL_MS = 30 * 86_400_000  # keys, configs and kicked notes (§6.1)


class DevnetGroupAdmin:
    """The admin of one group: ``identity`` is the admin's own Session account."""

    def __init__(
        self, snode: SnodeClient, dm: SessionClient, identity: Identity, seed: bytes, name: str
    ) -> None:
        self.snode = snode
        self.dm = dm
        self.identity = identity
        self.group = GroupKeyPair(seed)
        self.group_id = GroupID.from_key(self.group.public)
        self.state = GroupState(self.group_id, identity, seed)
        self.keyring = self.state.keyring
        self.info = Info(name=name)
        me = Member(identity.session_id, name="admin", admin=True, invite=None)
        self.members: dict[SessionID, Member] = {me.session_id: me}
        self._messages: dict[int, ConfigMessage] = {NS_INFO: empty_message()}
        self._messages[NS_MEMBERS] = empty_message()
        self._last_ts = 0

    @classmethod
    async def create(
        cls, snode: SnodeClient, dm: SessionClient, identity: Identity, name: str
    ) -> DevnetGroupAdmin:
        """A new group (§7.1): Info ``n``, Members with us as admin, keys generation 0."""
        admin = cls(snode, dm, identity, secrets.token_bytes(32), name)
        await admin.push(rekey=True)
        return admin

    # --- pushing ----------------------------------------------------------------------------

    def _now(self) -> int:
        self._last_ts = max(self.snode.clock.now_ms(), self._last_ts + 1)
        return self._last_ts

    def _store(self, ns: int, data: bytes) -> Call:
        encoded = base64.b64encode(data).decode()
        seed = self.group.seed

        def params(_node: ServiceNode, now: int) -> dict[str, Any]:
            return admin_request_params(
                seed, "store", ns, now, timestamp=now, ttl=CONFIG_TTL_MS, data=encoded
            )

        return Call("store", params)

    def _tokens(self, method: str, members: Sequence[SessionID]) -> Call:
        tokens = [subaccount_token(self.group.seed, m).hex() for m in members]
        key = "revoke" if method == "revoke_subaccount" else "unrevoke"
        seed = self.group.seed
        return Call(
            method, lambda _n, now: admin_request_params(seed, method, None, now, **{key: tokens})
        )

    def _config(self, ns: int) -> bytes:
        if ns == NS_INFO:
            data = info_data(self.info)
        else:
            data = members_data(Members(tuple(sorted(self.members.values(), key=_by_id))))
        bt = next_message(self._messages[ns], data, self.group.secret)
        self._messages[ns] = parse_message(bt, self.group.public)
        domain = INFO_DOMAIN if ns == NS_INFO else MEMBERS_DOMAIN
        (blob,) = seal_message(bt, self.keyring.encryption_key(), domain)
        return blob

    async def push(self, *, rekey: bool = False, extra: Sequence[Call] = ()) -> None:
        """One ``sequence``: [keys] → Info → Members → ``extra`` (§3.4, §7)."""
        requests: list[Call] = []
        keys_message = None
        if rekey:
            keys_message = self.keyring.rekey(list(self.members)).message
            requests.append(self._store(NS_KEYS, keys_message))
        requests += [self._store(NS_INFO, self._config(NS_INFO))]
        requests += [self._store(NS_MEMBERS, self._config(NS_MEMBERS)), *extra]
        _, results = await self.snode.batch(self.group_id.value, requests, sequence=True)
        for result in results:
            result.raise_for_status()
        if keys_message is not None:  # our own rekey back: no longer pending (§3.4)
            h = auth.message_hash(self.group_id.value, NS_KEYS, keys_message)
            self.keyring.load_message(keys_message, h, self.snode.clock.now_ms())

    async def post(self, message: Message) -> GroupSent:
        """Post to ns 11 as the admin's own account, group-key authenticated."""
        sign = request_signer(self.identity, self.group_id, seed=self.group.seed)
        return await post_group_message(self.snode, self.state, sign, message, self._now())

    # --- flows --------------------------------------------------------------------------------

    async def invite(self, member: SessionID, name: str = "") -> SentMessage:
        """§7.2: unrevoke, add to Members, rekey, push, MemberChange, then the 1:1 invite."""
        self.members[member] = Member(member, name=name, invite=SendStatus.SENT)
        await self.push(rekey=True, extra=[self._tokens("unrevoke_subaccount", [member])])
        t = self._now()
        signature = self.group.sign(f"MEMBER_CHANGE{GroupMemberChangeType.ADDED}{t}".encode())
        change = GroupMemberChange(GroupMemberChangeType.ADDED, (member.value,), signature)
        sign = request_signer(self.identity, self.group_id, seed=self.group.seed)
        await post_group_message(self.snode, self.state, sign, change, t)
        t = self._now()
        invite = GroupInvite(
            group_session_id=self.group_id.value,
            name=self.info.name,
            member_auth_data=make_member_auth_data(self.group.seed, member),
            admin_signature=self.group.sign(f"INVITE{member.value}{t}".encode()),
            profile=self.dm.profile,
        )
        # The admin signature covers the envelope timestamp (§7.11): sent with exactly t.
        return await self.dm.send_message(member, invite, timestamp=t)

    async def remove(self, member: SessionID) -> None:
        """§7.5: kicked note (-11) + revoke, then erase from Members, rekey without them."""
        generation = self.keyring.current_generation or 0
        note = make_kicked_note(self.group.seed, [member], generation)
        kick = [self._store(NS_REVOKED, note), self._tokens("revoke_subaccount", [member])]
        _, results = await self.snode.batch(self.group_id.value, kick, sequence=True)
        for result in results:
            result.raise_for_status()
        del self.members[member]
        await self.push(rekey=True)

    async def set_name(self, name: str) -> GroupSent:
        """§7.7: Info ``n``, push, then an admin-signed InfoChange{NAME}."""
        self.info = dataclasses.replace(self.info, name=name)
        await self.push()
        t = self._now()
        kind = GroupInfoChangeType.NAME
        signature = self.group.sign(f"INFO_CHANGE{int(kind)}{t}".encode())
        change = GroupInfoChange(kind, signature, updated_name=name)
        sign = request_signer(self.identity, self.group_id, seed=self.group.seed)
        return await post_group_message(self.snode, self.state, sign, change, t)

    async def destroy(self) -> None:
        """§7.9: Info ``!`` = 1."""
        self.info = dataclasses.replace(self.info, destroyed=True)
        await self.push()

    async def delete_member_content(
        self, members: Sequence[SessionID] = (), hashes: Sequence[str] = ()
    ) -> GroupSent:
        """§7.8: admin-signed DeleteMemberContent (all of ``members``' messages + ``hashes``)."""
        t = self._now()
        ids = [m.value for m in members]
        signature = self.group.sign(delete_content_signed_string(t, ids, hashes))
        content = GroupDeleteMemberContent(tuple(ids), tuple(hashes), signature)
        sign = request_signer(self.identity, self.group_id, seed=self.group.seed)
        return await post_group_message(self.snode, self.state, sign, content, t)


def _by_id(member: Member) -> bytes:
    return member.session_id.raw
