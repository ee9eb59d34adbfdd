"""``Content`` protobuf bytes -> message model (docs/session-protocol.md §2.4-§2.8).

Python's protobuf does not check proto2 ``required`` fields on parse, so every required field
the bridge relies on is checked here and reported as :class:`MissingField`. Text fields with
invalid UTF-8 come back from upb as ``bytes`` in proto2; they are decoded leniently (U+FFFD),
as the Session apps do, rather than dropping the message.
"""

from __future__ import annotations

from bridge.session.messages import model as m
from bridge.session.messages.encode import EXPIRATION_TIMER_UPDATE_FLAG
from bridge.session.messages.errors import MalformedContent
from bridge.session.messages.groups_decode import decode_group_update
from bridge.session.messages.util import (
    Common,
    data_profile,
    profile_from,
    require,
    text,
    text_or_none,
)
from bridge.session.proto import ProtobufDecodeError, ProtobufMessage
from bridge.session.proto import SessionProtos_pb2 as pb


def parse_content(data: bytes) -> m.Message:
    """Parse unpadded ``Content`` bytes into a message model.

    Raises :class:`MalformedContent` if ``data`` is not a protobuf ``Content`` and
    :class:`MissingField` if a field the protocol requires is absent. Content the bridge does
    not handle (calls, configs, empty content...) becomes :class:`UnsupportedContent`.
    """
    content = parse_content_proto(data)
    common = _common_fields(content)
    return _decode_body(content, data, common)


def parse_content_proto(data: bytes) -> pb.Content:
    """Parse ``data`` as a ``Content`` protobuf, raising :class:`MalformedContent`."""
    content = pb.Content()
    try:
        content.ParseFromString(bytes(data))
    except (ProtobufDecodeError, ValueError, TypeError) as exc:
        raise MalformedContent(f"not a Content protobuf: {exc}") from None
    return content


def _common_fields(content: pb.Content) -> Common:
    # Desktop treats sigTimestamp 0 like an absent one (§2.11: "if set").
    sig_timestamp = content.sigTimestamp if content.sigTimestamp else None
    expiry = None
    if content.HasField("expirationType") or content.HasField("expirationTimer"):
        expiry = m.Expiry(_expiry_mode(content), content.expirationTimer)
    return Common(expiry=expiry, sig_timestamp=sig_timestamp)


def _expiry_mode(content: pb.Content) -> m.ExpiryMode:
    try:
        return m.ExpiryMode(content.expirationType)
    except ValueError:
        return m.ExpiryMode.OFF


def _decode_body(content: pb.Content, raw: bytes, common: Common) -> m.Message:
    if content.HasField("dataMessage"):
        return _decode_data_message(content, raw, common)
    if content.HasField("unsendRequest"):
        unsend = content.unsendRequest
        require(unsend, "timestamp", "author")
        return m.Unsend(unsend.timestamp, text(unsend.author), **common)
    if content.HasField("typingMessage"):
        typing = content.typingMessage
        require(typing, "timestamp", "action")
        started = typing.action == pb.TypingMessage.STARTED
        return m.Typing(started, typing.timestamp, **common)
    if content.HasField("receiptMessage"):
        return _decode_receipt(content.receiptMessage, raw, common)
    if content.HasField("messageRequestResponse"):
        response = content.messageRequestResponse
        require(response, "isApproved")
        profile = profile_from(
            response.profile if response.HasField("profile") else None,
            response.profileKey if response.HasField("profileKey") else None,
        )
        return m.MessageRequestResponse(response.isApproved, profile, **common)
    if content.HasField("dataExtractionNotification"):
        return _decode_data_extraction(content.dataExtractionNotification, common)
    return m.UnsupportedContent(_unsupported_kind(content, raw), raw, **common)


def _unsupported_kind(content: pb.Content, raw: bytes) -> str:
    for name in ("callMessage", "sharedConfigMessage"):
        if content.HasField(name):
            return name
    # Nothing the bridge knows is set: either an empty Content or only fields newer than us.
    return "unknown" if raw else "empty"


def _decode_receipt(receipt: pb.ReceiptMessage, raw: bytes, common: Common) -> m.Message:
    require(receipt, "type")
    if receipt.type != pb.ReceiptMessage.READ:
        # DELIVERY exists only in libsession's copy of the schema (§2.7); no app sends it.
        return m.UnsupportedContent("deliveryReceipt", raw, **common)
    return m.ReadReceipt(tuple(receipt.timestamp), **common)


def _decode_data_extraction(
    notification: pb.DataExtractionNotification, common: Common
) -> m.Message:
    require(notification, "type")
    timestamp = notification.timestamp if notification.HasField("timestamp") else None
    kind = m.DataExtractionKind(notification.type)
    return m.DataExtraction(kind, timestamp, **common)


def _decode_data_message(content: pb.Content, raw: bytes, common: Common) -> m.Message:
    data = content.dataMessage
    if data.HasField("groupUpdateMessage"):
        return decode_group_update(data, raw, common)
    if data.HasField("closedGroupControlMessage"):
        return _decode_legacy_group(data.closedGroupControlMessage, raw, common)
    if data.HasField("reaction"):
        return _decode_reaction(data.reaction, text_or_none(data, "syncTarget"), common)
    if data.flags & EXPIRATION_TIMER_UPDATE_FLAG:
        # The new setting is the Content's own expiration fields (§2.14).
        mode = _expiry_mode(content)
        common = Common(expiry=None, sig_timestamp=common["sig_timestamp"])
        target = text_or_none(data, "syncTarget")
        return m.DisappearingSettings(mode, content.expirationTimer, target, **common)
    if data.HasField("openGroupInvitation"):
        invitation = data.openGroupInvitation
        require(invitation, "url", "name")
        return m.CommunityInvitation(text(invitation.url), text(invitation.name), **common)
    return _decode_visible(data, common)


def _decode_legacy_group(
    control: pb.ClosedGroupControlMessage, raw: bytes, common: Common
) -> m.Message:
    """A legacy group's NEW (an invite) becomes :class:`LegacyGroupInvite`; its other control
    messages are unsupported (§2.9)."""
    require(control, "type")
    if control.type != pb.ClosedGroupControlMessage.NEW:
        return m.UnsupportedContent("legacyGroupControl", raw, **common)
    return m.LegacyGroupInvite(
        control.publicKey.hex(),
        text(control.name) if control.HasField("name") else "",
        tuple(member.hex() for member in control.members),
        tuple(admin.hex() for admin in control.admins),
        **common,
    )


def _decode_reaction(
    reaction: pb.DataMessage.Reaction, sync_target: str | None, common: Common
) -> m.Message:
    require(reaction, "id", "author", "action")
    return m.Reaction(
        reaction.id,
        text(reaction.author),
        text(reaction.emoji),
        m.ReactionAction(reaction.action),
        sync_target,
        **common,
    )


def _decode_visible(data: pb.DataMessage, common: Common) -> m.VisibleMessage:
    quote = None
    if data.HasField("quote"):
        require(data.quote, "id", "author")
        quote = m.Quote(data.quote.id, text(data.quote.author), text_or_none(data.quote, "text"))
    return m.VisibleMessage(
        body=text_or_none(data, "body"),
        attachments=tuple(_decode_attachment(a) for a in data.attachments),
        quote=quote,
        previews=tuple(_decode_preview(p) for p in data.preview),
        profile=data_profile(data),
        sync_target=text_or_none(data, "syncTarget"),
        blocks_community_message_requests=(
            data.blocksCommunityMessageRequests
            if data.HasField("blocksCommunityMessageRequests")
            else None
        ),
        **common,
    )


def _decode_preview(preview: pb.DataMessage.Preview) -> m.LinkPreview:
    require(preview, "url")
    image = _decode_attachment(preview.image) if preview.HasField("image") else None
    return m.LinkPreview(text(preview.url), text_or_none(preview, "title"), image)


def _decode_attachment(pointer: pb.AttachmentPointer) -> m.Attachment:
    # Field 1 (deprecated_id) is "required" but unused (§2.6); do not insist on it.
    return m.Attachment(
        url=text_or_none(pointer, "url"),
        key=pointer.key,
        size=_optional_int(pointer, "size"),
        digest=pointer.digest if pointer.HasField("digest") else None,
        content_type=text_or_none(pointer, "contentType"),
        file_name=text_or_none(pointer, "fileName"),
        flags=pointer.flags,
        width=_optional_int(pointer, "width"),
        height=_optional_int(pointer, "height"),
        caption=text_or_none(pointer, "caption"),
    )


def _optional_int(message: ProtobufMessage, name: str) -> int | None:
    if not message.HasField(name):
        return None
    value: int = getattr(message, name)
    return value
