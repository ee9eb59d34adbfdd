"""The protobuf schema matches the field numbers of docs/session-protocol.md §2.2-§2.8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from grpc_tools import protoc  # type: ignore[import-untyped]

from bridge.session.proto import SessionProtos_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
PROTO = "bridge/session/proto/SessionProtos.proto"

# message -> {field name: number}, transcribed from the tables of docs/session-protocol.md.
EXPECTED: dict[str, dict[str, int]] = {
    "Envelope": {  # §2.2
        "type": 1,
        "source": 2,
        "timestamp": 5,
        "sourceDevice": 7,
        "content": 8,
        "serverTimestamp": 10,
        "proSig": 11,
    },
    "WebSocketMessage": {"type": 1, "request": 2},  # §2.3
    "WebSocketRequestMessage": {"verb": 1, "path": 2, "body": 3, "id": 4, "headers": 5},
    "Content": {  # §2.4
        "dataMessage": 1,
        "callMessage": 3,
        "receiptMessage": 5,
        "typingMessage": 6,
        "dataExtractionNotification": 8,
        "unsendRequest": 9,
        "messageRequestResponse": 10,
        "sharedConfigMessage": 11,
        "expirationType": 12,
        "expirationTimer": 13,
        "sigTimestamp": 15,
        "proMessage": 16,
        "proSigForCommunityMessageOnly": 17,
    },
    "ProMessage": {"proof": 1, "profileBitset": 2, "messageBitset": 3},  # §2.4 field 16
    "DataMessage": {  # §2.5
        "body": 1,
        "attachments": 2,
        "flags": 4,
        "profileKey": 6,
        "timestamp": 7,
        "quote": 8,
        "preview": 10,
        "reaction": 11,
        "profile": 101,
        "openGroupInvitation": 102,
        "closedGroupControlMessage": 104,  # legacy groups: read only, to say they are gone
        "syncTarget": 105,
        "blocksCommunityMessageRequests": 106,
        "groupUpdateMessage": 120,
    },
    "DataMessage.Quote": {"id": 1, "author": 2, "text": 3, "attachments": 4},
    "DataMessage.Preview": {"url": 1, "title": 2, "image": 3},
    "DataMessage.Reaction": {"id": 1, "author": 2, "emoji": 3, "action": 4},
    "DataMessage.OpenGroupInvitation": {"url": 1, "name": 3},
    "LokiProfile": {"displayName": 1, "profilePicture": 2, "lastProfileUpdateSeconds": 3},
    "AttachmentPointer": {  # §2.6
        "deprecated_id": 1,
        "contentType": 2,
        "key": 3,
        "size": 4,
        "digest": 6,
        "fileName": 7,
        "flags": 8,
        "width": 9,
        "height": 10,
        "caption": 11,
        "url": 101,
    },
    "TypingMessage": {"timestamp": 1, "action": 2},  # §2.7
    "ReceiptMessage": {"type": 1, "timestamp": 2},
    "UnsendRequest": {"timestamp": 1, "author": 2},
    "MessageRequestResponse": {"isApproved": 1, "profileKey": 2, "profile": 3},
    "DataExtractionNotification": {"type": 1, "timestamp": 2},
    "CallMessage": {"type": 1, "sdps": 2, "sdpMLineIndexes": 3, "sdpMids": 4, "uuid": 5},
    "GroupUpdateMessage": {  # §2.8
        "inviteMessage": 1,
        "infoChangeMessage": 2,
        "memberChangeMessage": 3,
        "promoteMessage": 4,
        "memberLeftMessage": 5,
        "inviteResponse": 6,
        "deleteMemberContent": 7,
        "memberLeftNotificationMessage": 8,
    },
    "GroupUpdateInviteMessage": {
        "groupSessionId": 1,
        "name": 2,
        "memberAuthData": 3,
        "adminSignature": 4,
    },
    "GroupUpdatePromoteMessage": {"groupIdentitySeed": 1, "name": 2},
    "GroupUpdateInfoChangeMessage": {
        "type": 1,
        "updatedName": 2,
        "updatedExpiration": 3,
        "adminSignature": 4,
    },
    "GroupUpdateMemberChangeMessage": {
        "type": 1,
        "memberSessionIds": 2,
        "historyShared": 3,
        "adminSignature": 4,
    },
    "GroupUpdateInviteResponseMessage": {"isApproved": 1},
    "GroupUpdateDeleteMemberContentMessage": {
        "memberSessionIds": 1,
        "messageHashes": 2,
        "adminSignature": 3,
    },
    "GroupUpdateMemberLeftMessage": {},
    "GroupUpdateMemberLeftNotificationMessage": {},
}

EXPECTED_ENUMS: dict[str, dict[str, int]] = {
    "Envelope.Type": {"SESSION_MESSAGE": 6, "CLOSED_GROUP_MESSAGE": 7},
    "WebSocketMessage.Type": {"UNKNOWN": 0, "REQUEST": 1, "RESPONSE": 2},
    "Content.ExpirationType": {"UNKNOWN": 0, "DELETE_AFTER_READ": 1, "DELETE_AFTER_SEND": 2},
    "DataMessage.Flags": {"EXPIRATION_TIMER_UPDATE": 2},
    "DataMessage.Reaction.Action": {"REACT": 0, "REMOVE": 1},
    "TypingMessage.Action": {"STARTED": 0, "STOPPED": 1},
    "ReceiptMessage.Type": {"DELIVERY": 0, "READ": 1},
    "DataExtractionNotification.Type": {"SCREENSHOT": 1, "MEDIA_SAVED": 2},
    "AttachmentPointer.Flags": {"VOICE_MESSAGE": 1},
    "GroupUpdateInfoChangeMessage.Type": {"NAME": 1, "AVATAR": 2, "DISAPPEARING_MESSAGES": 3},
    "GroupUpdateMemberChangeMessage.Type": {"ADDED": 1, "REMOVED": 2, "PROMOTED": 3},
}


def _descriptor(path: str) -> Any:
    top, *nested = path.split(".")
    descriptor = pb.DESCRIPTOR.message_types_by_name[top]
    for name in nested:
        descriptor = descriptor.nested_types_by_name[name]
    return descriptor


@pytest.mark.parametrize("message", sorted(EXPECTED))
def test_field_numbers(message: str) -> None:
    fields = {f.name: f.number for f in _descriptor(message).fields}
    assert fields == EXPECTED[message]


@pytest.mark.parametrize("enum", sorted(EXPECTED_ENUMS))
def test_enum_values(enum: str) -> None:
    *owner, name = enum.split(".")
    descriptor = _descriptor(".".join(owner)).enum_types_by_name[name]
    assert {v.name: v.number for v in descriptor.values} == EXPECTED_ENUMS[enum]


def test_numbers_agree_with_session_python() -> None:
    """Cross-check with the independent client's schema where both declare a field."""
    from session_python.protobuf import signalservice_pb2 as theirs  # type: ignore[import-untyped]

    renamed = {"Unsend": "UnsendRequest"}
    compared = 0
    for name, their_message in theirs.DESCRIPTOR.message_types_by_name.items():
        ours = pb.DESCRIPTOR.message_types_by_name.get(renamed.get(name, name))
        if ours is None:
            continue
        our_numbers = {f.name: f.number for f in ours.fields}
        for field in their_message.fields:
            their_name = {"unsendMessage": "unsendRequest"}.get(field.name, field.name)
            if their_name in our_numbers:
                assert our_numbers[their_name] == field.number, f"{name}.{field.name}"
                compared += 1
    assert compared > 40


def test_generated_module_is_current(tmp_path: Path) -> None:
    """``scripts/gen_proto.sh`` output is committed and matches the .proto."""
    status = protoc.main(
        ["protoc", f"-I{ROOT}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", PROTO]
    )
    assert status == 0
    for suffix in ("_pb2.py", "_pb2.pyi"):
        generated = tmp_path / PROTO.replace(".proto", suffix)
        committed = ROOT / PROTO.replace(".proto", suffix)
        assert generated.read_text() == committed.read_text(), f"regenerate {committed.name}"


def test_descriptor_has_a_unique_name() -> None:
    # Registered under its repository path, so it cannot clash with session-python's
    # signalservice.proto (or another Session schema) in the default descriptor pool.
    assert pb.DESCRIPTOR.name == PROTO
    assert pb.DESCRIPTOR.package == "SessionProtos"
