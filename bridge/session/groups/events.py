"""Typed events of groups v2 polling and member flows (docs/groups-v2.md §6.3, §7).

Events that carry a storage ``hash`` come from one ns 11 message and must be acknowledged
(:meth:`bridge.session.groups.poller.GroupPoller.ack`) once the consumer has handled them;
the others describe a state change (Info, Members, removal, destruction) and need no ack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from bridge.ids import GroupID, SessionID
from bridge.session.groups.info import Info
from bridge.session.groups.members import Members
from bridge.session.messages import Message, Reaction

__all__ = [
    "GroupContentDeletedEvent",
    "GroupDestroyedEvent",
    "GroupEvent",
    "GroupInfoEvent",
    "GroupInviteEvent",
    "GroupMembersEvent",
    "GroupMessageEvent",
    "GroupPromotedEvent",
    "GroupReactionEvent",
    "GroupRemovedEvent",
    "GroupUnsendEvent",
    "MessageEvent",
    "RemovalReason",
]


@dataclass(frozen=True)
class GroupMessageEvent:
    """A verified ns 11 message: visible messages and group control messages (§4.2, §7).

    ``sender`` is authenticated by its signature but membership is not enforced by the
    protocol (§4.2). ``timestamp`` is the envelope timestamp that quotes, reactions and admin
    signatures refer to (§7.11); ``hash`` is the storage hash, the de-duplication key.
    ``attachments_expired``: Info ``D`` (delete-attachments-before, §2.1) covers this message:
    do not fetch or show its attachments. Messages covered by Info ``d`` are never delivered.
    """

    group: GroupID
    sender: SessionID
    timestamp: int
    hash: str
    content: Message
    expiry: int = 0
    attachments_expired: bool = False


@dataclass(frozen=True)
class GroupReactionEvent:
    """A reaction (or its removal) to ``(reaction.target_author, reaction.target_timestamp)``."""

    group: GroupID
    sender: SessionID
    timestamp: int
    hash: str
    reaction: Reaction
    expiry: int = 0


@dataclass(frozen=True)
class GroupUnsendEvent:
    """The sender deletes its own message sent at ``target_timestamp`` (only own ones)."""

    group: GroupID
    sender: SessionID
    timestamp: int
    hash: str
    target_timestamp: int
    expiry: int = 0


@dataclass(frozen=True)
class GroupContentDeletedEvent:
    """``GroupUpdateDeleteMemberContentMessage`` (§7.8).

    ``by_admin``: the admin signature verified; delete every message of
    ``member_session_ids`` and the listed ``message_hashes`` sent before ``timestamp``.
    Otherwise only the listed hashes *authored by* ``sender`` may be deleted.
    """

    group: GroupID
    sender: SessionID
    timestamp: int
    hash: str
    message_hashes: tuple[str, ...]
    member_session_ids: tuple[SessionID, ...]
    by_admin: bool
    expiry: int = 0


@dataclass(frozen=True)
class GroupInfoEvent:
    """groups::Info changed (name, picture, disappearing timer, delete-before...) (§2.1)."""

    group: GroupID
    info: Info


@dataclass(frozen=True)
class GroupMembersEvent:
    """groups::Members changed (§2.2)."""

    group: GroupID
    members: Members


class RemovalReason(enum.Enum):
    """How we learned that we were removed (§7.10)."""

    KICKED_NOTE = "kicked_note"  # a ns -11 note named us (§4.4)
    REVOKED = "revoked"  # the group swarm refused our subaccount with 401 (§6.2)
    NOT_IN_MEMBERS = "not_in_members"  # the current Members config no longer lists us (§7.10)
    LEFT = "left"  # we left ourselves (§7.6)


@dataclass(frozen=True)
class GroupRemovedEvent:
    """We are no longer a member; polling of the group stopped."""

    group: GroupID
    reason: RemovalReason


@dataclass(frozen=True)
class GroupDestroyedEvent:
    """Info ``!`` is set: the admins destroyed the group (§7.9); polling stopped."""

    group: GroupID


@dataclass(frozen=True)
class GroupInviteEvent:
    """A verified invite arrived 1:1 (§7.3); accept it with ``GroupsClient.accept``."""

    group: GroupID
    inviter: SessionID
    name: str
    timestamp: int


@dataclass(frozen=True)
class GroupPromotedEvent:
    """A verified promotion arrived 1:1 (§7.4): we now hold the group seed (stored)."""

    group: GroupID
    promoter: SessionID
    name: str
    timestamp: int


MessageEvent: TypeAlias = (
    GroupMessageEvent | GroupReactionEvent | GroupUnsendEvent | GroupContentDeletedEvent
)
GroupEvent: TypeAlias = (
    MessageEvent
    | GroupInfoEvent
    | GroupMembersEvent
    | GroupRemovedEvent
    | GroupDestroyedEvent
    | GroupInviteEvent
    | GroupPromotedEvent
)
