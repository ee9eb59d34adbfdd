"""Typed Session messages and their ``Content`` protobuf codec (docs/session-protocol.md
§2.4-§2.8).

``content_to_proto(message) -> bytes`` and ``parse_content(bytes) -> message`` convert between
the frozen dataclasses of :mod:`.model` and unpadded ``Content`` bytes. Padding (§2.12) and
encryption (§3) are the caller's business (:mod:`bridge.session.padding`,
:mod:`bridge.session.onetoone`).
"""

from __future__ import annotations

from bridge.session.messages.decode import parse_content
from bridge.session.messages.encode import content_to_proto
from bridge.session.messages.errors import (
    ContentDecodeError,
    InvalidMessage,
    MalformedContent,
    MissingField,
)
from bridge.session.messages.model import (
    Attachment,
    CommunityInvitation,
    ContentFields,
    DataExtraction,
    DataExtractionKind,
    DisappearingSettings,
    Expiry,
    ExpiryMode,
    GroupDeleteMemberContent,
    GroupInfoChange,
    GroupInfoChangeType,
    GroupInvite,
    GroupInviteResponse,
    GroupMemberChange,
    GroupMemberChangeType,
    GroupMemberLeft,
    GroupMemberLeftNotification,
    GroupPromote,
    GroupUpdate,
    LegacyGroupInvite,
    LinkPreview,
    Message,
    MessageRequestResponse,
    Profile,
    Quote,
    Reaction,
    ReactionAction,
    ReadReceipt,
    Typing,
    Unsend,
    UnsupportedContent,
    VisibleMessage,
)

__all__ = [
    "Attachment",
    "CommunityInvitation",
    "ContentDecodeError",
    "ContentFields",
    "DataExtraction",
    "DataExtractionKind",
    "DisappearingSettings",
    "Expiry",
    "ExpiryMode",
    "GroupDeleteMemberContent",
    "GroupInfoChange",
    "GroupInfoChangeType",
    "GroupInvite",
    "GroupInviteResponse",
    "GroupMemberChange",
    "GroupMemberChangeType",
    "GroupMemberLeft",
    "GroupMemberLeftNotification",
    "GroupPromote",
    "GroupUpdate",
    "InvalidMessage",
    "LegacyGroupInvite",
    "LinkPreview",
    "MalformedContent",
    "Message",
    "MessageRequestResponse",
    "MissingField",
    "Profile",
    "Quote",
    "Reaction",
    "ReactionAction",
    "ReadReceipt",
    "Typing",
    "Unsend",
    "UnsupportedContent",
    "VisibleMessage",
    "content_to_proto",
    "parse_content",
]
