"""One group's local state as a member sees it, and how retrieved messages change it (pure).

:class:`GroupState` holds the keyring (§3), the current Info and Members configs (§1.12) and
turns retrieved messages into :mod:`.events`. :meth:`GroupState.apply` takes one poll
batch's new messages of every namespace and processes them in the order of §6.3: **all** keys
(ns 12) first, then Info (13), then Members (14), then kicked notes (-11), then messages (11)
— so a message encrypted with a key that arrives in the same batch still decrypts (risk #10).
Messages sent before Info ``d`` are dropped and attachments before ``D`` flagged (§2.1); a
current Members config without us removes us unless a kicked note said so first (§7.10).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bridge.ids import GroupID, SessionID
from bridge.session.errors import SessionError
from bridge.session.groups import multipart
from bridge.session.groups.config import (
    INFO_DOMAIN,
    MEMBERS_DOMAIN,
    ConfigState,
    read_blobs,
)
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupDestroyedEvent,
    GroupEvent,
    GroupInfoEvent,
    GroupMembersEvent,
    GroupMessageEvent,
    GroupReactionEvent,
    GroupRemovedEvent,
    GroupUnsendEvent,
    MessageEvent,
    RemovalReason,
)
from bridge.session.groups.group_messages import decrypt_group_message
from bridge.session.groups.info import Info, parse_info
from bridge.session.groups.keyring import GroupKeyring
from bridge.session.groups.keys import GroupKeyPair
from bridge.session.groups.members import Members, parse_members
from bridge.session.groups.multi_encrypt import read_kicked_note
from bridge.session.groups.store import RawGroupMessage
from bridge.session.keys import BadSignatureError, Identity, verify_ed25519
from bridge.session.messages import GroupDeleteMemberContent, Reaction, Unsend, VisibleMessage

log = logging.getLogger("bridge.session.groups.group_state")

__all__ = [
    "NS_INFO",
    "NS_KEYS",
    "NS_MEMBERS",
    "NS_MESSAGES",
    "NS_REVOKED",
    "POLL_NAMESPACES",
    "Applied",
    "GroupState",
    "delete_content_signed_string",
]

NS_MESSAGES, NS_KEYS, NS_INFO, NS_MEMBERS, NS_REVOKED = 11, 12, 13, 14, -11
#: Sub-request order of one poll (§6.2): -11, 11, 13, 14 and keys **last**, so that every
#: message or config retrieved earlier in the batch can be decrypted with keys fetched after.
POLL_NAMESPACES = (NS_REVOKED, NS_MESSAGES, NS_INFO, NS_MEMBERS, NS_KEYS)
CONFIG_NAMESPACES = {NS_INFO: INFO_DOMAIN, NS_MEMBERS: MEMBERS_DOMAIN}


def delete_content_signed_string(
    timestamp: int, member_ids: Sequence[str], hashes: Sequence[str]
) -> bytes:
    """``"DELETE_CONTENT" || t || sid… || hash…`` signed by admins (§7.8, §7.11)."""
    return f"DELETE_CONTENT{timestamp}{''.join(member_ids)}{''.join(hashes)}".encode()


@dataclass
class Applied:
    """Outcome of :meth:`GroupState.apply`: state events and per-message results.

    ``messages`` maps every ns 11 hash given to its event, or ``None`` when it was dropped
    (undecryptable, invalid, or a kind that carries nothing for the consumer).
    """

    events: list[GroupEvent] = field(default_factory=list)
    messages: dict[str, MessageEvent | None] = field(default_factory=dict)


class GroupState:
    """Keys, Info and Members of one group for ``identity`` (a member, or an admin with seed)."""

    def __init__(self, group_id: GroupID, identity: Identity, seed: bytes | None = None) -> None:
        self.group_id = group_id
        self.identity = identity
        self.group_pk = group_id.key
        group = GroupKeyPair(seed) if seed is not None else None
        self.keyring = GroupKeyring(self.group_pk, identity=identity, group=group)
        self.configs = {ns: ConfigState() for ns in CONFIG_NAMESPACES}
        self._assembler = multipart.Assembler()
        self.info: Info = parse_info({})
        self.members: Members = parse_members({})
        self.removed: RemovalReason | None = None
        self.destroyed = False
        #: The current Members config (a received one, not the implicit empty one) does not
        #: list us (§7.10); acted on after the kicked notes of the same batch (§6.3).
        self.unlisted = False

    @property
    def ready(self) -> bool:
        """True once we hold a group key (we can read and post)."""
        return bool(self.keyring.keys) or self.keyring.pending is not None

    @property
    def active(self) -> bool:
        """Neither removed nor destroyed: keep polling."""
        return self.removed is None and not self.destroyed

    def apply(
        self, batch: Mapping[int, Sequence[RawGroupMessage]], now_ms: int, *, replay: bool = False
    ) -> Applied:
        """Process one batch's *new* messages by namespace in §6.3 order (see module doc).

        ``replay`` rebuilds from stored bytes after a restart: state events are still
        produced (the consumer may have missed them), kicked notes are not re-read.
        """
        out = Applied()
        for raw in batch.get(NS_KEYS, ()):
            self._load_keys(raw)
        for ns, domain in CONFIG_NAMESPACES.items():
            if batch.get(ns):
                self._load_config(ns, domain, batch[ns], now_ms, out)
        if not replay and self.removed is None:
            for raw in batch.get(NS_REVOKED, ()):
                if self._kicked(raw):
                    self.removed = RemovalReason.KICKED_NOTE
                    out.events.append(GroupRemovedEvent(self.group_id, self.removed))
                    break
        if self.unlisted and self.removed is None and not self.destroyed:
            # §7.10: "we disappear from Members" — a kicked note of this batch wins (above);
            # ``removed`` makes it once: the poller stops polling a removed group.
            self.removed = RemovalReason.NOT_IN_MEMBERS
            out.events.append(GroupRemovedEvent(self.group_id, self.removed))
        for raw in batch.get(NS_MESSAGES, ()):
            out.messages[raw.hash] = self.message_event(raw)
        return out

    def _load_keys(self, raw: RawGroupMessage) -> None:
        try:
            self.keyring.load_message(raw.data, raw.hash, raw.timestamp)
        except SessionError as e:
            log.warning("%s: dropping keys message %s: %s", self._name, raw.hash, e)

    def _load_config(
        self,
        ns: int,
        domain: bytes,
        raws: Sequence[RawGroupMessage],
        now_ms: int,
        out: Applied,
    ) -> None:
        blobs = [(r.hash, r.data) for r in raws]
        keys = self.keyring.decryption_keys()
        result = read_blobs(
            blobs, keys, domain, self.group_pk, self.configs[ns], self._assembler, now_ms
        )
        for rejected in result.rejected:
            log.info(
                "%s: ns %d blob %s dropped: %s",
                self._name,
                ns,
                rejected.storage_hash,
                rejected.reason,
            )
        self.configs[ns] = result.state
        if not result.changed:
            return
        if ns == NS_INFO:
            self.info = parse_info(result.state.data)
            out.events.append(GroupInfoEvent(self.group_id, self.info))
            if self.info.destroyed and not self.destroyed:
                # §7.9: "!" set — the group is gone for every member.
                self.destroyed = True
                out.events.append(GroupDestroyedEvent(self.group_id))
        else:
            self.members = parse_members(result.state.data)
            out.events.append(GroupMembersEvent(self.group_id, self.members))
            # Listed with a pending removal (``R``) still counts as listed: the removal job
            # (kicked note, revoke, rekey, §7.5) follows.
            self.unlisted = self.members.get(self.identity.session_id) is None

    def _kicked(self, raw: RawGroupMessage) -> bool:
        try:
            note = read_kicked_note(raw.data, self.identity, self.group_pk)
        except SessionError:
            return False  # a note for other members
        current = self.keyring.current_generation
        # §4.4: only a note at least as new as our key generation removes us (an old note
        # from before a re-invite must not).
        return current is None or note.generation >= current

    def message_event(self, raw: RawGroupMessage) -> MessageEvent | None:
        """Decrypt and verify one ns 11 message into its event; ``None`` drops it."""
        try:
            message = decrypt_group_message(
                raw.data, self.keyring.decryption_keys(), self.group_pk
            )
        except SessionError as e:
            log.warning("%s: dropping message %s: %s", self._name, raw.hash, e)
            return None
        g, sender, ts, h, content = (
            self.group_id,
            message.sender,
            message.timestamp,
            raw.hash,
            message.content,
        )
        if self.info.deletes_message(ts):
            # §2.1 / §6.3 step 3: Info "d" orders deleting everything sent before it (Info is
            # applied before the messages of the same batch, so a fresh "d" already counts).
            log.debug("%s: message %s is before delete_before", self._name, h)
            return None
        match content:
            case Reaction():
                return GroupReactionEvent(g, sender, ts, h, content, raw.expiry)
            case Unsend():
                if content.target_author != sender.value:
                    log.info("%s: ignoring unsend of another member's message", self._name)
                    return None
                return GroupUnsendEvent(g, sender, ts, h, content.target_timestamp, raw.expiry)
            case GroupDeleteMemberContent():
                return self._delete_content(raw, sender, ts, content)
        expired = (
            isinstance(content, VisibleMessage)
            and bool(content.attachments)
            and self.info.deletes_attachments(ts)
        )  # §2.1 "D": attachments sent before it are deleted
        return GroupMessageEvent(g, sender, ts, h, content, raw.expiry, expired)

    def _delete_content(
        self, raw: RawGroupMessage, sender: SessionID, ts: int, content: GroupDeleteMemberContent
    ) -> GroupContentDeletedEvent | None:
        members = tuple(_session_ids(content.member_session_ids))
        signature = content.admin_signature
        by_admin = False
        if signature:
            signed = delete_content_signed_string(
                ts, content.member_session_ids, content.message_hashes
            )
            try:
                verify_ed25519(self.group_pk, signed, signature)
            except BadSignatureError:
                log.warning("%s: DeleteMemberContent with a bad admin signature", self._name)
                return None
            by_admin = True
        elif members:
            # Without the admin signature a member may only delete its own hashes (§7.8).
            members = ()
        return GroupContentDeletedEvent(
            self.group_id,
            sender,
            ts,
            raw.hash,
            tuple(content.message_hashes),
            members,
            by_admin,
            raw.expiry,
        )

    @property
    def _name(self) -> str:
        return f"group {self.group_id.value[:10]}…"


def _session_ids(values: Iterable[str]) -> Iterable[SessionID]:
    for value in values:
        try:
            yield SessionID.parse(value)
        except ValueError:
            continue
