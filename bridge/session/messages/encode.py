"""Message model -> ``Content`` protobuf bytes (docs/session-protocol.md §2.4-§2.8)."""

from __future__ import annotations

from typing import cast

from bridge.session.messages import model as m
from bridge.session.messages.errors import InvalidMessage
from bridge.session.proto import ProtobufEncodeError
from bridge.session.proto import SessionProtos_pb2 as pb

# DataMessage.flags value of a "disappearing settings changed" message (§2.5, §2.14).
EXPIRATION_TIMER_UPDATE_FLAG = 2


def content_to_proto(message: m.Message) -> bytes:
    """Serialise ``message`` as an (unpadded) ``Content`` protobuf.

    Raises :class:`InvalidMessage` if a value does not fit its protobuf field (negative or
    oversized integer, unencodable string) or if the message kind cannot be sent.
    """
    try:
        serialized: bytes = build_content(message).SerializeToString()
    except (ValueError, TypeError, OverflowError, ProtobufEncodeError) as exc:
        raise InvalidMessage(f"cannot encode {type(message).__name__}: {exc}") from None
    return serialized


def build_content(message: m.Message) -> pb.Content:
    """Build the ``Content`` protobuf object for ``message`` (see :func:`content_to_proto`)."""
    content = pb.Content()
    _fill_body(content, message)
    _fill_common(content, message)
    return content


def _fill_common(content: pb.Content, message: m.Message) -> None:
    if message.sig_timestamp is not None:
        content.sigTimestamp = message.sig_timestamp
    if isinstance(message, m.DisappearingSettings):
        if message.expiry is not None:
            raise InvalidMessage("DisappearingSettings carries its setting in mode/timer_seconds")
        content.expirationType = _wire_expiry_mode(message.mode)
        content.expirationTimer = message.timer_seconds
    elif message.expiry is not None:
        content.expirationType = _wire_expiry_mode(message.expiry.mode)
        content.expirationTimer = message.expiry.timer_seconds


def _wire_expiry_mode(mode: m.ExpiryMode) -> pb.Content.ExpirationType:
    return cast(pb.Content.ExpirationType, int(mode))  # same numbers as the wire enum (§2.4)


def _fill_body(content: pb.Content, message: m.Message) -> None:
    match message:
        case m.VisibleMessage():
            _fill_visible(content.dataMessage, message)
        case m.Reaction():
            reaction = content.dataMessage.reaction
            reaction.id = message.target_timestamp
            reaction.author = message.target_author
            reaction.emoji = message.emoji
            reaction.action = cast(pb.DataMessage.Reaction.Action, int(message.action))
            if message.sync_target is not None:
                content.dataMessage.syncTarget = message.sync_target
        case m.Unsend():
            content.unsendRequest.timestamp = message.target_timestamp
            content.unsendRequest.author = message.target_author
        case m.Typing():
            typing = content.typingMessage
            typing.timestamp = message.timestamp
            typing.action = (
                pb.TypingMessage.STARTED if message.started else pb.TypingMessage.STOPPED
            )
        case m.ReadReceipt():
            content.receiptMessage.type = pb.ReceiptMessage.READ
            content.receiptMessage.timestamp.extend(message.timestamps)
        case m.MessageRequestResponse():
            response = content.messageRequestResponse
            response.isApproved = message.is_approved
            if message.profile is not None:
                _fill_profile(response.profile, message.profile)
                if message.profile.avatar_key is not None:
                    response.profileKey = message.profile.avatar_key
        case m.DisappearingSettings():
            content.dataMessage.flags = EXPIRATION_TIMER_UPDATE_FLAG
            if message.sync_target is not None:
                content.dataMessage.syncTarget = message.sync_target
        case m.DataExtraction():
            extraction = content.dataExtractionNotification
            extraction.type = cast(pb.DataExtractionNotification.Type, int(message.kind))
            if message.timestamp is not None:
                extraction.timestamp = message.timestamp
        case m.CommunityInvitation():
            content.dataMessage.openGroupInvitation.url = message.url
            content.dataMessage.openGroupInvitation.name = message.name
        case m.UnsupportedContent():
            raise InvalidMessage(f"unsupported content ({message.kind}) cannot be sent")
        case m.LegacyGroupInvite():
            raise InvalidMessage("legacy group control messages are never sent (§2.9)")
        case _:
            _fill_group_update(content.dataMessage, message)


def _fill_visible(data: pb.DataMessage, message: m.VisibleMessage) -> None:
    data.SetInParent()  # an empty DataMessage is still a (blank) visible message
    if message.body is not None:
        data.body = message.body
    for attachment in message.attachments:
        _fill_attachment(data.attachments.add(), attachment)
    if message.quote is not None:
        data.quote.id = message.quote.timestamp
        data.quote.author = message.quote.author
        if message.quote.text is not None:
            data.quote.text = message.quote.text
    for preview in message.previews:
        _fill_preview(data.preview.add(), preview)
    _fill_data_profile(data, message.profile)
    if message.sync_target is not None:
        data.syncTarget = message.sync_target
    if message.blocks_community_message_requests is not None:  # community posts: always
        data.blocksCommunityMessageRequests = message.blocks_community_message_requests


def _fill_preview(out: pb.DataMessage.Preview, preview: m.LinkPreview) -> None:
    out.url = preview.url
    if preview.title is not None:
        out.title = preview.title
    if preview.image is not None:
        _fill_attachment(out.image, preview.image)


def _fill_attachment(out: pb.AttachmentPointer, attachment: m.Attachment) -> None:
    # Field 1 is required but unused; desktop calls it deprecated_id and sends 0 (§2.6).
    out.deprecated_id = 0
    if attachment.url is not None:
        out.url = attachment.url
    if attachment.key:
        out.key = attachment.key
    if attachment.size is not None:
        out.size = attachment.size
    if attachment.digest is not None:
        out.digest = attachment.digest
    if attachment.content_type is not None:
        out.contentType = attachment.content_type
    if attachment.file_name is not None:
        out.fileName = attachment.file_name
    if attachment.flags:
        out.flags = attachment.flags
    if attachment.width is not None:
        out.width = attachment.width
    if attachment.height is not None:
        out.height = attachment.height
    if attachment.caption is not None:
        out.caption = attachment.caption


def _fill_data_profile(data: pb.DataMessage, profile: m.Profile | None) -> None:
    if profile is None:
        return
    _fill_profile(data.profile, profile)
    if profile.avatar_key is not None:
        data.profileKey = profile.avatar_key


def _fill_profile(out: pb.LokiProfile, profile: m.Profile) -> None:
    # Touch the sub-message even when every field is empty, so that presence survives.
    out.SetInParent()
    if profile.display_name is not None:
        out.displayName = profile.display_name
    if profile.avatar_url is not None:
        out.profilePicture = profile.avatar_url
    if profile.updated_seconds is not None:
        out.lastProfileUpdateSeconds = profile.updated_seconds


def _fill_group_update(data: pb.DataMessage, message: m.Message) -> None:
    update = data.groupUpdateMessage
    match message:
        case m.GroupInvite():
            invite = update.inviteMessage
            invite.groupSessionId = message.group_session_id
            invite.name = message.name
            invite.memberAuthData = message.member_auth_data
            invite.adminSignature = message.admin_signature
            _fill_data_profile(data, message.profile)
        case m.GroupPromote():
            update.promoteMessage.groupIdentitySeed = message.group_identity_seed
            update.promoteMessage.name = message.name
            _fill_data_profile(data, message.profile)
        case m.GroupInfoChange():
            _fill_info_change(update.infoChangeMessage, message)
        case m.GroupMemberChange():
            change = update.memberChangeMessage
            change.type = cast(pb.GroupUpdateMemberChangeMessage.Type, int(message.change_type))
            change.memberSessionIds.extend(message.member_session_ids)
            if message.history_shared:
                change.historyShared = True
            change.adminSignature = message.admin_signature
        case m.GroupMemberLeft():
            update.memberLeftMessage.SetInParent()
        case m.GroupMemberLeftNotification():
            update.memberLeftNotificationMessage.SetInParent()
        case m.GroupInviteResponse():
            update.inviteResponse.isApproved = message.is_approved
            _fill_data_profile(data, message.profile)
        case m.GroupDeleteMemberContent():
            delete = update.deleteMemberContent
            delete.SetInParent()
            delete.memberSessionIds.extend(message.member_session_ids)
            delete.messageHashes.extend(message.message_hashes)
            if message.admin_signature is not None:
                delete.adminSignature = message.admin_signature
        case _:
            raise InvalidMessage(f"not a Session message model: {type(message).__name__}")


def _fill_info_change(out: pb.GroupUpdateInfoChangeMessage, message: m.GroupInfoChange) -> None:
    out.type = cast(pb.GroupUpdateInfoChangeMessage.Type, int(message.change_type))
    if message.updated_name is not None:
        out.updatedName = message.updated_name
    if message.updated_expiration is not None:
        out.updatedExpiration = message.updated_expiration
    out.adminSignature = message.admin_signature
