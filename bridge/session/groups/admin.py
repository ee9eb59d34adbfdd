"""Groups v2 as an admin: create, invite, promote, remove, edit Info, destroy (docs/groups-v2.md
§1.13, §3.4-§3.6, §5.2, §5.5, §7.1-§7.11).

A :class:`GroupAdmin` holds one group's seed. Before every change it reads the group's keys
and configs back (:meth:`GroupAdmin.sync`) and merges them with its own as libsession does
(§1.13), so two admins writing at once lose nothing. Each change is one ``sequence`` to the
group swarm, signed with the group key (§5.4): supplemental keys → keys → Info → Members →
control messages → revoke/unrevoke → ``delete`` of obsolete config hashes (§7 "push configs").
1:1 messages (invite, promotion) go through the admin's :class:`SessionClient`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.ids import GroupID, SessionID
from bridge.session import dm_media
from bridge.session.client import SessionClient
from bridge.session.dm_events import SentMessage
from bridge.session.dm_media import FileTransfer
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.groups.admin_configs import AdminConfig
from bridge.session.groups.config import INFO_DOMAIN, MEMBERS_DOMAIN, seal_message
from bridge.session.groups.events import MessageEvent
from bridge.session.groups.group_state import (
    NS_INFO,
    NS_KEYS,
    NS_MEMBERS,
    NS_MESSAGES,
    NS_REVOKED,
    GroupState,
    delete_content_signed_string,
)
from bridge.session.groups.info import Info, Picture, info_data, parse_info
from bridge.session.groups.keys import GroupKeyPair
from bridge.session.groups.member_send import GroupSent, post_group_message, request_signer
from bridge.session.groups.members import (
    Member,
    Members,
    Removal,
    SendStatus,
    members_data,
    parse_members,
)
from bridge.session.groups.multi_encrypt import make_kicked_note
from bridge.session.groups.store import RawGroupMessage
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
    GroupInviteResponse,
    GroupMemberChange,
    GroupMemberChangeType,
    GroupMemberLeft,
    GroupPromote,
    Message,
)
from bridge.session.snode import auth
from bridge.session.snode.nodes import ServiceNode
from bridge.session.snode.results import Call, SubResult, parse_retrieve
from bridge.session.snode.rpc import SnodeClient

__all__ = ["CONFIG_TTL_MS", "CreatedGroup", "GroupAdmin", "NotAnAdmin"]

CONFIG_TTL_MS = 30 * 86_400_000  # keys, configs and kicked notes (§6.1)
_DOMAINS = {NS_INFO: INFO_DOMAIN, NS_MEMBERS: MEMBERS_DOMAIN}


class NotAnAdmin(InvalidInput):
    """The operation needs a member that is not in the group (or the group is destroyed)."""


@dataclass(frozen=True)
class CreatedGroup:
    """What the creator's UserGroups entry needs (§7.1 1, §8): ``K`` = seed, ``n``, ``j``."""

    group_id: GroupID
    seed: bytes
    secret_key: bytes  # the 64-byte libsodium form
    name: str
    joined_at: int  # seconds


class GroupAdmin:
    """One group administered by ``identity`` (which holds the group seed)."""

    def __init__(
        self,
        snode: SnodeClient,
        identity: Identity,
        seed: bytes,
        *,
        dm: SessionClient | None = None,
        files: FileTransfer | None = None,
    ) -> None:
        self.snode = snode
        self.identity = identity
        self.dm = dm
        self.files = files
        self.group = GroupKeyPair(seed)
        self.group_id = GroupID.from_key(self.group.public)
        self.state = GroupState(self.group_id, identity, seed)
        self.keyring = self.state.keyring
        self.configs = {ns: AdminConfig(d, self.group.public) for ns, d in _DOMAINS.items()}
        self._cursor = ""  # last ns 11 hash read by poll_messages
        self.authored: dict[str, list[str]] = {}  # sender -> storage hashes of their messages

    # --- creation ----------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        snode: SnodeClient,
        identity: Identity,
        name: str,
        *,
        dm: SessionClient | None = None,
        files: FileTransfer | None = None,
        description: str = "",
        own_name: str = "",
    ) -> GroupAdmin:
        """A new group (§7.1): Info, Members with us as admin, keys generation 0, pushed."""
        admin = cls(snode, identity, secrets.token_bytes(32), dm=dm, files=files)
        me = Member(identity.session_id, name=own_name, admin=True, invite=None)
        info = Info(name=name, description=description)
        await admin._push(info, Members((me,)), rekey=True)
        return admin

    def created(self) -> CreatedGroup:
        """The data of the creator's UserGroups entry (written by the user-config writer)."""
        return CreatedGroup(
            self.group_id, self.group.seed, self.group.secret, self.info.name, int(time.time())
        )

    @property
    def info(self) -> Info:
        """The current groups::Info."""
        return parse_info(self.configs[NS_INFO].data)

    @property
    def members(self) -> Members:
        """The current groups::Members."""
        return parse_members(self.configs[NS_MEMBERS].data)

    # --- reading back and merging (§1.13, §3.6, §6.3) ----------------------------------------

    async def sync(self) -> None:
        """Read keys, Info and Members; merge with ours; push a merge or rekey if one is due."""
        calls = [self._retrieve(ns) for ns in (NS_KEYS, NS_INFO, NS_MEMBERS)]
        node, results = await self.snode.batch(self.group_id.value, calls)
        retrieved: dict[int, list[tuple[str, bytes]]] = {}
        for ns, result in zip((NS_KEYS, NS_INFO, NS_MEMBERS), results, strict=True):
            result.raise_for_status()
            messages = parse_retrieve(node, ns, result.body).messages
            if ns == NS_KEYS:
                for m in messages:
                    self._load_keys(m.hash, m.timestamp, m.data)
            retrieved[ns] = [(m.hash, m.data) for m in messages]
        now = self.snode.clock.now_ms()
        keys = self.keyring.decryption_keys()
        for ns, cfg in self.configs.items():
            cfg.load(retrieved[ns], keys, now)
        await self._settle()

    def _load_keys(self, storage_hash: str, timestamp: int, data: bytes) -> None:
        # Not signed by the group key, or malformed: ignored as members do (§3.1).
        with contextlib.suppress(SessionError):
            self.keyring.load_message(data, storage_hash, timestamp)

    async def _settle(self) -> None:
        """After a merge: our own pending promotion accepted (§7.4), merges and rekeys pushed."""
        members = self.members
        me = members.get(self.identity.session_id)
        if me is not None and me.promotion is not None:
            members = _replace(members, dataclasses.replace(me, promotion=None))
            await self._push(None, members, rekey=self.keyring.needs_rekey())
        elif any(c.dirty for c in self.configs.values()) or self.keyring.needs_rekey():
            await self._push(None, None, rekey=self.keyring.needs_rekey())

    def _retrieve(self, ns: int, last_hash: str = "") -> Call:
        seed = self.group.seed

        def params(_node: ServiceNode, now: int) -> dict[str, Any]:
            return admin_request_params(seed, "retrieve", ns, now, last_hash=last_hash)

        return Call("retrieve", params)

    # --- pushing ------------------------------------------------------------------------------

    def _store(self, ns: int, data: bytes, ttl: int = CONFIG_TTL_MS) -> Call:
        encoded = base64.b64encode(data).decode()
        seed = self.group.seed

        def params(_node: ServiceNode, now: int) -> dict[str, Any]:
            return admin_request_params(
                seed, "store", ns, now, timestamp=now, ttl=ttl, data=encoded
            )

        return Call("store", params)

    def _admin_call(self, method: str, **fields: Any) -> Call:
        seed = self.group.seed
        return Call(
            method, lambda _n, now: admin_request_params(seed, method, None, now, **fields)
        )

    def _tokens(self, method: str, members: Sequence[SessionID]) -> Call:
        """``revoke_subaccount`` / ``unrevoke_subaccount`` of members' tokens (§5.5)."""
        tokens = [subaccount_token(self.group.seed, m).hex() for m in members]
        key = "revoke" if method == "revoke_subaccount" else "unrevoke"
        return self._admin_call(method, **{key: tokens})

    async def _push(
        self,
        info: Info | None,
        members: Members | None,
        *,
        rekey: bool = False,
        supplement_for: Sequence[SessionID] = (),
        extra: Sequence[Call] = (),
    ) -> list[SubResult]:
        """One ``sequence`` (§7): [supplement] → [keys] → Info → Members → ``extra`` → delete."""
        requests: list[Call] = []
        if supplement_for:
            requests.append(self._store(NS_KEYS, self.keyring.supplement(supplement_for)))
        keys_message = None
        if rekey:
            listed = members if members is not None else self.members
            keys_message = self.keyring.rekey([m.session_id for m in listed]).message
            requests.append(self._store(NS_KEYS, keys_message))
        written: dict[int, tuple[bytes, bytes]] = {}
        for ns, data in ((NS_INFO, info), (NS_MEMBERS, members)):
            cfg = self.configs[ns]
            if data is None and not (rekey or cfg.dirty):
                continue  # unchanged; a rekey re-encrypts both with a new seqno (§3.4)
            raw = None if data is None else _config_data(data)
            bt = cfg.write(raw, self.group.secret)
            (blob,) = seal_message(bt, self.keyring.encryption_key(), cfg.domain)
            requests.append(self._store(ns, blob))
            written[ns] = (bt, blob)
        requests += extra
        obsolete = sorted(set().union(*(c.obsolete for c in self.configs.values())))
        if obsolete:
            requests.append(self._admin_call("delete", messages=obsolete))
        _, results = await self.snode.batch(self.group_id.value, requests, sequence=True)
        for result in results:
            result.raise_for_status()
        for cfg in self.configs.values():
            cfg.obsolete -= set(obsolete)
        for ns, (bt, blob) in written.items():
            self.configs[ns].pushed(bt, {auth.message_hash(self.group_id.value, ns, blob)})
        if keys_message is not None:  # our own rekey back: no longer pending (§3.4)
            h = auth.message_hash(self.group_id.value, NS_KEYS, keys_message)
            self.keyring.load_message(keys_message, h, self.snode.clock.now_ms())
        return results

    def _now(self) -> int:
        # Distinct per message (§7.11), from the clock every identity shares.
        return self.snode.sent_clock.next_ms()

    async def post(self, message: Message, timestamp: int | None = None) -> GroupSent:
        """Post to ns 11 as the admin's own account, group-key authenticated (§4.1)."""
        sign = request_signer(self.identity, self.group_id, seed=self.group.seed)
        t = self._now() if timestamp is None else timestamp
        return await post_group_message(self.snode, self.state, sign, message, t)

    def sign(self, text: str) -> bytes:
        """An adminSignature over an ASCII string (§7.11)."""
        return self.group.sign(text.encode())

    async def _member_change(
        self, kind: GroupMemberChangeType, sids: Sequence[SessionID], history: bool = False
    ) -> GroupSent:
        t = self._now()
        signature = self.sign(f"MEMBER_CHANGE{int(kind)}{t}")
        ids = tuple(s.value for s in sids)
        return await self.post(GroupMemberChange(kind, ids, signature, history), t)

    # --- members (§7.2-§7.5) ------------------------------------------------------------------

    async def invite(
        self, member: SessionID, name: str = "", *, history: bool = False
    ) -> SentMessage | None:
        """§7.2: unrevoke, Members ``I``(+``s``), [supplement], rekey, push, MemberChange, then
        the admin-signed 1:1 invite; ``I`` = 1 (sent) or 2 (failed) pushed after."""
        await self.sync()
        entry = Member(member, name=name, invite=SendStatus.NOT_SENT, supplement=history)
        members = _replace(self.members, entry)
        unrevoke = self._tokens("unrevoke_subaccount", [member])
        supplement = [member] if history and self.keyring.keys else []
        await self._push(None, members, rekey=True, supplement_for=supplement, extra=[unrevoke])
        await self._member_change(GroupMemberChangeType.ADDED, [member], history)
        sent = None
        status = SendStatus.FAILED
        if self.dm is not None:
            t = self._now()
            invite = GroupInvite(
                group_session_id=self.group_id.value,
                name=self.info.name,
                member_auth_data=make_member_auth_data(self.group.seed, member),
                admin_signature=self.sign(f"INVITE{member.value}{t}"),
                profile=self.dm.profile,
            )
            # The admin signature covers the envelope timestamp (§7.11): send with exactly t.
            sent = await self.dm.send_message(member, invite, timestamp=t)
            status = SendStatus.SENT
        await self._set_member(member, invite=status)
        return sent

    async def _set_member(self, sid: SessionID, **changes: Any) -> None:
        await self.sync()
        current = self.members.get(sid)
        if current is None:
            return
        await self._push(None, _replace(self.members, dataclasses.replace(current, **changes)))

    async def handle_invite_response(
        self, sender: SessionID, response: GroupInviteResponse
    ) -> None:
        """§7.3 4: an approved invite clears ``I``/``s`` and refreshes the member's profile."""
        if not response.is_approved:
            return
        changes: dict[str, Any] = {"invite": None, "supplement": False}
        profile = response.profile
        if profile is not None and profile.display_name:
            changes["name"] = profile.display_name
        await self._set_member(sender, **changes)

    async def promote(self, member: SessionID) -> SentMessage | None:
        """§7.4: MemberChange{PROMOTED}, ``A=1, P=3``, the 1:1 seed, then ``P`` = 1 or 2."""
        await self.sync()
        current = self.members.get(member)
        if current is None:
            raise NotAnAdmin(f"{member.value} is not a member")
        promoted = dataclasses.replace(
            current, admin=True, promotion=SendStatus.NOT_SENT, invite=None
        )
        await self._push(None, _replace(self.members, promoted))
        await self._member_change(GroupMemberChangeType.PROMOTED, [member])
        sent = None
        status = SendStatus.FAILED
        if self.dm is not None:
            promote = GroupPromote(self.group.seed, self.info.name, profile=self.dm.profile)
            sent = await self.dm.send_message(member, promote)
            status = SendStatus.SENT
        await self._set_member(member, promotion=status)
        return sent

    async def remove(
        self, sids: Sequence[SessionID], *, delete_messages: bool = False, notify: bool = True
    ) -> None:
        """§7.5: ``R`` pushed + MemberChange{REMOVED}; then the removal job (kicked note,
        revoke, [DeleteMemberContent + delete]); the entries erased and a rekey without them."""
        await self.sync()
        mark = Removal.MEMBER_AND_MESSAGES if delete_messages else Removal.MEMBER
        members = self.members
        targets = [m for m in (members.get(s) for s in sids) if m is not None]
        for m in targets:
            members = _replace(members, dataclasses.replace(m, removal=mark))
        await self._push(None, members)
        if notify:
            await self._member_change(
                GroupMemberChangeType.REMOVED, [m.session_id for m in targets]
            )
        await self.run_removals()

    async def run_removals(self) -> None:
        """The removal job for every member marked ``R`` (any admin may run it, §7.5 2)."""
        await self.sync()
        marked = [m for m in self.members if m.removal is not None]
        if not marked:
            return
        sids = [m.session_id for m in marked]
        generation = self.keyring.current_generation or 0
        note = make_kicked_note(self.group.seed, sids, generation)
        extra = [self._store(NS_REVOKED, note), self._tokens("revoke_subaccount", sids)]
        purge = [m.session_id for m in marked if m.removal is Removal.MEMBER_AND_MESSAGES]
        hashes = [h for s in purge for h in self.authored.get(s.value, [])]
        _, results = await self.snode.batch(self.group_id.value, extra, sequence=True)
        for result in results:
            result.raise_for_status()
        if purge:
            await self.delete_member_content(purge)
        keep = Members(
            tuple(m for m in self.members if m.removal is None),
            self.members.unparsed,
            self.members.extra,
        )
        delete = [self._admin_call("delete", messages=hashes)] if hashes else []
        await self._push(None, keep, rekey=True, extra=delete)

    async def delete_member_content(
        self, members: Sequence[SessionID] = (), hashes: Sequence[str] = ()
    ) -> GroupSent:
        """§7.8: admin-signed DeleteMemberContent (all of ``members``' messages + ``hashes``)."""
        t = self._now()
        ids = [m.value for m in members]
        signature = self.group.sign(delete_content_signed_string(t, ids, hashes))
        content = GroupDeleteMemberContent(tuple(ids), tuple(hashes), signature)
        return await self.post(content, t)

    # --- Info (§7.7, §7.9) --------------------------------------------------------------------

    async def _edit_info(self, **changes: Any) -> None:
        await self.sync()
        await self._push(dataclasses.replace(self.info, **changes), None)

    async def _info_change(self, kind: GroupInfoChangeType, **fields: Any) -> GroupSent:
        t = self._now()
        signature = self.sign(f"INFO_CHANGE{int(kind)}{t}")
        return await self.post(GroupInfoChange(kind, signature, **fields), t)

    async def set_name(self, name: str) -> GroupSent:
        """Info ``n``, push, InfoChange{NAME}."""
        await self._edit_info(name=name)
        return await self._info_change(GroupInfoChangeType.NAME, updated_name=name)

    async def set_description(self, description: str) -> None:
        """Info ``o``, push; nothing is posted for a description-only change (§7.7)."""
        await self._edit_info(description=description)

    async def set_picture(self, image: bytes | None) -> GroupSent:
        """Encrypt and upload ``image`` as the apps do (random key), set ``p``/``q``; ``None``
        removes the picture. Posts InfoChange{AVATAR}."""
        picture = None
        if image is not None:
            if self.files is None:
                raise InvalidInput("a group picture needs a file server")
            url, key = await dm_media.upload_avatar(self.files, image)
            picture = Picture(url, key)
        await self._edit_info(picture=picture)
        return await self._info_change(GroupInfoChangeType.AVATAR)

    async def set_disappearing_timer(self, seconds: int | None) -> GroupSent:
        """Info ``E`` (delete after send), push, InfoChange{DISAPPEARING_MESSAGES}."""
        await self._edit_info(disappearing_timer=seconds or None)
        kind = GroupInfoChangeType.DISAPPEARING_MESSAGES
        return await self._info_change(kind, updated_expiration=seconds or 0)

    async def destroy(self, *, delete_messages: bool = False) -> None:
        """§7.9: Info ``!`` = 1, pushed; optionally ``delete_all`` of ns 11."""
        await self.sync()
        extra = []
        if delete_messages:
            seed = self.group.seed
            extra.append(
                Call(
                    "delete_all",
                    lambda _n, now: admin_request_params(
                        seed, "delete_all", NS_MESSAGES, now, timestamp=now
                    ),
                )
            )
        await self._push(dataclasses.replace(self.info, destroyed=True), None, extra=extra)

    # --- reading messages (invite responses, members leaving) -----------------------------------

    async def poll_messages(self) -> list[MessageEvent]:
        """Read new ns 11 messages; act on InviteResponse and MemberLeft (§7.3 4, §7.6)."""
        node, body = await self.snode.call(
            self.group_id.value, self._retrieve(NS_MESSAGES, self._cursor)
        )
        events: list[MessageEvent] = []
        for m in parse_retrieve(node, NS_MESSAGES, body).messages:
            self._cursor = m.hash
            event = self.state.message_event(_raw(NS_MESSAGES, m.hash, m.timestamp, m.data))
            if event is None:
                continue
            self.authored.setdefault(event.sender.value, []).append(m.hash)
            events.append(event)
            content = getattr(event, "content", None)
            if isinstance(content, GroupInviteResponse):
                await self.handle_invite_response(event.sender, content)
            elif isinstance(content, GroupMemberLeft) and self.members.get(event.sender):
                await self.remove([event.sender], notify=False)
        return events


def _raw(ns: int, h: str, timestamp: int, data: bytes) -> RawGroupMessage:
    return RawGroupMessage(ns, h, timestamp, 0, data)


def _replace(members: Members, entry: Member) -> Members:
    others = [m for m in members if m.session_id != entry.session_id]
    ordered = tuple(sorted([*others, entry], key=lambda m: m.session_id.raw))
    return Members(ordered, members.unparsed, members.extra)


def _config_data(value: Info | Members) -> dict[bytes, Any]:
    return info_data(value) if isinstance(value, Info) else members_data(value)
