"""Legacy (pre-2025) closed-group control messages (docs/session-protocol.md §2.9): a NEW is
recognised as an invite, everything else stays unsupported; none can be sent."""

from __future__ import annotations

import pytest

from bridge.session.messages import InvalidMessage, LegacyGroupInvite, UnsupportedContent
from bridge.session.messages.decode import parse_content
from bridge.session.messages.encode import content_to_proto
from bridge.session.proto import SessionProtos_pb2 as pb

GROUP = bytes.fromhex("05" + "ab" * 32)
ALICE = bytes.fromhex("05" + "01" * 32)
BOB = bytes.fromhex("05" + "02" * 32)


def control(kind: int, *, name: str | None = "Old friends") -> bytes:
    content = pb.Content()
    message = content.dataMessage.closedGroupControlMessage
    message.type = kind  # type: ignore[assignment]
    message.publicKey = GROUP
    if name is not None:
        message.name = name
    message.members.extend([ALICE, BOB])
    message.admins.append(ALICE)
    return content.SerializeToString()


def test_a_new_legacy_group_is_an_invite() -> None:
    parsed = parse_content(control(pb.ClosedGroupControlMessage.NEW))
    assert parsed == LegacyGroupInvite(
        GROUP.hex(), "Old friends", (ALICE.hex(), BOB.hex()), (ALICE.hex(),)
    )


def test_a_nameless_invite_has_an_empty_name() -> None:
    parsed = parse_content(control(pb.ClosedGroupControlMessage.NEW, name=None))
    assert isinstance(parsed, LegacyGroupInvite) and parsed.name == ""


@pytest.mark.parametrize(
    "kind",
    [
        pb.ClosedGroupControlMessage.ENCRYPTION_KEY_PAIR,
        pb.ClosedGroupControlMessage.NAME_CHANGE,
        pb.ClosedGroupControlMessage.MEMBER_LEFT,
    ],
)
def test_other_legacy_controls_are_unsupported(kind: int) -> None:
    parsed = parse_content(control(kind))
    assert isinstance(parsed, UnsupportedContent) and parsed.kind == "legacyGroupControl"


def test_undeclared_legacy_fields_are_kept_unknown() -> None:
    # Field 4 (the key pair) is not declared; appended bytes merge into the same messages.
    key_pair = b"\x22\x04\x0a\x00\x12\x00"  # field 4 = {1: b"", 2: b""}
    data = b"\xc2\x06" + bytes([len(key_pair)]) + key_pair  # DataMessage field 104
    fragment = b"\x0a" + bytes([len(data)]) + data  # Content field 1
    parsed = parse_content(control(pb.ClosedGroupControlMessage.NEW) + fragment)
    assert isinstance(parsed, LegacyGroupInvite) and parsed.members == (ALICE.hex(), BOB.hex())


def test_a_legacy_invite_is_never_sent() -> None:
    with pytest.raises(InvalidMessage):
        content_to_proto(LegacyGroupInvite(GROUP.hex(), "x"))
