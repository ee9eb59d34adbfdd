"""``DataMessage.groupUpdateMessage`` (field 120) -> groups v2 models (docs/session-protocol.md
§2.8).

The admin signatures are returned as they are; verifying them needs the group key and the
envelope timestamp and belongs to the groups layer.
"""

from __future__ import annotations

from bridge.session.messages import model as m
from bridge.session.messages.util import Common, data_profile, require, text
from bridge.session.proto import SessionProtos_pb2 as pb


def decode_group_update(data: pb.DataMessage, raw: bytes, common: Common) -> m.Message:
    """Decode the groups v2 control message inside ``data``.

    ``GroupUpdateMessage`` is a one-of by convention only; the first field set (in field-number
    order) wins, and an update with none set is reported as unsupported content (``raw`` is the
    whole ``Content``, kept for the log).
    """
    update = data.groupUpdateMessage
    profile = data_profile(data)
    if update.HasField("inviteMessage"):
        invite = update.inviteMessage
        require(invite, "groupSessionId", "name", "memberAuthData", "adminSignature")
        return m.GroupInvite(
            text(invite.groupSessionId),
            text(invite.name),
            invite.memberAuthData,
            invite.adminSignature,
            profile,
            **common,
        )
    if update.HasField("infoChangeMessage"):
        return _decode_info_change(update.infoChangeMessage, common)
    if update.HasField("memberChangeMessage"):
        return _decode_member_change(update.memberChangeMessage, common)
    if update.HasField("promoteMessage"):
        promote = update.promoteMessage
        require(promote, "groupIdentitySeed", "name")
        return m.GroupPromote(promote.groupIdentitySeed, text(promote.name), profile, **common)
    return _decode_simple_update(update, profile, raw, common)


def _decode_simple_update(
    update: pb.GroupUpdateMessage, profile: m.Profile | None, raw: bytes, common: Common
) -> m.Message:
    if update.HasField("memberLeftMessage"):
        return m.GroupMemberLeft(**common)
    if update.HasField("inviteResponse"):
        require(update.inviteResponse, "isApproved")
        return m.GroupInviteResponse(update.inviteResponse.isApproved, profile, **common)
    if update.HasField("deleteMemberContent"):
        delete = update.deleteMemberContent
        return m.GroupDeleteMemberContent(
            tuple(text(s) for s in delete.memberSessionIds),
            tuple(text(h) for h in delete.messageHashes),
            delete.adminSignature if delete.HasField("adminSignature") else None,
            **common,
        )
    if update.HasField("memberLeftNotificationMessage"):
        return m.GroupMemberLeftNotification(**common)
    return m.UnsupportedContent("groupUpdateMessage", raw, **common)


def _decode_info_change(info: pb.GroupUpdateInfoChangeMessage, common: Common) -> m.Message:
    require(info, "type", "adminSignature")
    return m.GroupInfoChange(
        m.GroupInfoChangeType(info.type),
        info.adminSignature,
        text(info.updatedName) if info.HasField("updatedName") else None,
        info.updatedExpiration if info.HasField("updatedExpiration") else None,
        **common,
    )


def _decode_member_change(change: pb.GroupUpdateMemberChangeMessage, common: Common) -> m.Message:
    require(change, "type", "adminSignature")
    return m.GroupMemberChange(
        m.GroupMemberChangeType(change.type),
        tuple(text(s) for s in change.memberSessionIds),
        change.adminSignature,
        change.historyShared,
        **common,
    )
