"""Typed model of the Session ``Content`` messages the bridge handles (§2.4-§2.8).

Section numbers (§n) refer to ``docs/session-protocol.md``.

One ``Content`` protobuf carries one message; each class below is one kind of message. The fields
that every ``Content`` may carry (the disappearing-message setting of §2.14 and the signed
timestamp of §2.11) live in :class:`ContentFields`, the keyword-only base of every message.

Timestamps are Unix milliseconds; a message is referred to by its author's Session ID and its
*sent* timestamp (§2.11).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias

# AttachmentPointer.flags bit for voice notes (§2.6).
VOICE_MESSAGE_FLAG = 1


class ExpiryMode(enum.IntEnum):
    """``Content.expirationType`` (§2.4, §2.14); ``OFF`` is ``UNKNOWN`` on the wire."""

    OFF = 0
    DELETE_AFTER_READ = 1
    DELETE_AFTER_SEND = 2


class ReactionAction(enum.IntEnum):
    """``DataMessage.Reaction.action`` (§2.5)."""

    REACT = 0
    REMOVE = 1


class DataExtractionKind(enum.IntEnum):
    """``DataExtractionNotification.type`` (§2.7)."""

    SCREENSHOT = 1
    MEDIA_SAVED = 2


class GroupInfoChangeType(enum.IntEnum):
    """``GroupUpdateInfoChangeMessage.type`` (§2.8)."""

    NAME = 1
    AVATAR = 2
    DISAPPEARING_MESSAGES = 3


class GroupMemberChangeType(enum.IntEnum):
    """``GroupUpdateMemberChangeMessage.type`` (§2.8)."""

    ADDED = 1
    REMOVED = 2
    PROMOTED = 3


@dataclass(frozen=True)
class Expiry:
    """Disappearing-message setting carried by a message (§2.14)."""

    mode: ExpiryMode
    timer_seconds: int


@dataclass(frozen=True, kw_only=True)
class ContentFields:
    """Fields of ``Content`` itself, shared by every message kind.

    ``sig_timestamp`` must equal the envelope timestamp for 1:1 and group messages (§2.11);
    :func:`bridge.session.onetoone.encode_direct_message` sets it for you.
    """

    expiry: Expiry | None = None
    sig_timestamp: int | None = None


@dataclass(frozen=True)
class Profile:
    """Sender profile: ``DataMessage.profile`` plus ``profileKey`` (§2.5, §2.13)."""

    display_name: str | None = None
    avatar_url: str | None = None
    # AES-GCM key of the avatar blob (§2.13): not an identity secret, but kept out of logs.
    avatar_key: bytes | None = field(default=None, repr=False)
    updated_seconds: int | None = None


@dataclass(frozen=True)
class Attachment:
    """``AttachmentPointer`` (§2.6); ``key``/``digest`` feed :mod:`bridge.session.attachments`."""

    url: str | None = None
    key: bytes = field(default=b"", repr=False)
    size: int | None = None
    digest: bytes | None = None
    content_type: str | None = None
    file_name: str | None = None
    flags: int = 0
    width: int | None = None
    height: int | None = None
    caption: str | None = None

    @property
    def is_voice_message(self) -> bool:
        """True if the sender marked the attachment as a voice note."""
        return bool(self.flags & VOICE_MESSAGE_FLAG)


@dataclass(frozen=True)
class Quote:
    """Reply target: the quoted message's author and sent timestamp (§2.5 field 8)."""

    timestamp: int
    author: str
    text: str | None = None


@dataclass(frozen=True)
class LinkPreview:
    """``DataMessage.Preview`` (§2.5 field 10)."""

    url: str
    title: str | None = None
    image: Attachment | None = None


@dataclass(frozen=True)
class VisibleMessage(ContentFields):
    """An ordinary chat message (text and/or attachments)."""

    body: str | None = None
    attachments: tuple[Attachment, ...] = ()
    quote: Quote | None = None
    previews: tuple[LinkPreview, ...] = ()
    profile: Profile | None = None
    # Set on the copy a sender stores in its own swarm: the real recipient (§3.3).
    sync_target: str | None = None
    # Community posts say whether their author takes blinded DMs (§5.10); None: not said.
    blocks_community_message_requests: bool | None = None


@dataclass(frozen=True)
class Reaction(ContentFields):
    """Add or remove an emoji reaction on the message ``(target_author, target_timestamp)``."""

    target_timestamp: int
    target_author: str
    emoji: str
    action: ReactionAction = ReactionAction.REACT
    # Set on the copy a sender stores in its own swarm: the real recipient (§3.3).
    sync_target: str | None = None


@dataclass(frozen=True)
class Unsend(ContentFields):
    """Delete-for-everyone of the message ``(target_author, target_timestamp)`` (§2.7)."""

    target_timestamp: int
    target_author: str


@dataclass(frozen=True)
class Typing(ContentFields):
    """Typing indicator (§2.7)."""

    started: bool
    timestamp: int


@dataclass(frozen=True)
class ReadReceipt(ContentFields):
    """Read receipt for the messages sent at ``timestamps`` (§2.7)."""

    timestamps: tuple[int, ...]


@dataclass(frozen=True)
class MessageRequestResponse(ContentFields):
    """Acceptance (or refusal) of a message request (§2.7)."""

    is_approved: bool
    profile: Profile | None = None


@dataclass(frozen=True)
class DisappearingSettings(ContentFields):
    """ "Disappearing messages changed": ``DataMessage.flags = 2`` plus the new setting (§2.14).

    The setting is ``mode``/``timer_seconds``; the inherited ``expiry`` is not used.
    """

    mode: ExpiryMode
    timer_seconds: int
    # Set on the copy a sender stores in its own swarm: the real recipient (§3.3).
    sync_target: str | None = None


@dataclass(frozen=True)
class DataExtraction(ContentFields):
    """Screenshot / media-saved notification (§2.7)."""

    kind: DataExtractionKind
    timestamp: int | None = None


@dataclass(frozen=True)
class CommunityInvitation(ContentFields):
    """Invitation to a community (``DataMessage.openGroupInvitation``, §2.5 field 102)."""

    url: str
    name: str


@dataclass(frozen=True)
class GroupInvite(ContentFields):
    """Groups v2 invite, sent 1:1 to the invitee (§2.8)."""

    group_session_id: str
    name: str
    member_auth_data: bytes = field(repr=False)
    admin_signature: bytes
    profile: Profile | None = None


@dataclass(frozen=True)
class GroupPromote(ContentFields):
    """Groups v2 promotion to admin, sent 1:1; carries the group's secret seed (§2.8)."""

    group_identity_seed: bytes = field(repr=False)
    name: str
    profile: Profile | None = None


@dataclass(frozen=True)
class GroupInfoChange(ContentFields):
    """Groups v2 name/avatar/timer change notification (§2.8)."""

    change_type: GroupInfoChangeType
    admin_signature: bytes
    updated_name: str | None = None
    updated_expiration: int | None = None


@dataclass(frozen=True)
class GroupMemberChange(ContentFields):
    """Groups v2 members added/removed/promoted notification (§2.8)."""

    change_type: GroupMemberChangeType
    member_session_ids: tuple[str, ...]
    admin_signature: bytes
    history_shared: bool = False


@dataclass(frozen=True)
class GroupMemberLeft(ContentFields):
    """Groups v2: the sender left the group (§2.8)."""


@dataclass(frozen=True)
class GroupMemberLeftNotification(ContentFields):
    """Groups v2: visible "X left" notice (§2.8)."""


@dataclass(frozen=True)
class GroupInviteResponse(ContentFields):
    """Groups v2: the invitee accepted (or refused) the invite (§2.8)."""

    is_approved: bool
    profile: Profile | None = None


@dataclass(frozen=True)
class GroupDeleteMemberContent(ContentFields):
    """Groups v2: delete messages by member and/or storage hash (§2.8)."""

    member_session_ids: tuple[str, ...] = ()
    message_hashes: tuple[str, ...] = ()
    admin_signature: bytes | None = None


@dataclass(frozen=True)
class LegacyGroupInvite(ContentFields):
    """A legacy (pre-2025, ``05…``) closed group's NEW control message, sent 1:1 to each member
    (§2.9). Read only to tell the user such groups are not bridged; never sent."""

    group_public_key: str  # the group's ``05…`` id, hex ("" when absent)
    name: str
    members: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnsupportedContent(ContentFields):
    """A well-formed ``Content`` the bridge does not handle (calls, configs, empty...).

    ``kind`` names what it is; ``raw`` is the unpadded ``Content`` bytes, kept for logging.
    It cannot be sent: :func:`content_to_proto` refuses it.
    """

    kind: str
    raw: bytes = field(default=b"", repr=False)


GroupUpdate: TypeAlias = (
    GroupInvite
    | GroupPromote
    | GroupInfoChange
    | GroupMemberChange
    | GroupMemberLeft
    | GroupMemberLeftNotification
    | GroupInviteResponse
    | GroupDeleteMemberContent
)

Message: TypeAlias = (
    VisibleMessage
    | Reaction
    | Unsend
    | Typing
    | ReadReceipt
    | MessageRequestResponse
    | DisappearingSettings
    | DataExtraction
    | CommunityInvitation
    | GroupUpdate
    | LegacyGroupInvite
    | UnsupportedContent
)
