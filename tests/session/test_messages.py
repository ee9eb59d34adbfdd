"""Content codec: model <-> protobuf (docs/session-protocol.md §2.4-§2.8, §2.11, §2.14)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.session import messages as msg
from bridge.session.errors import SessionError
from bridge.session.messages.errors import ContentDecodeError
from bridge.session.proto import SessionProtos_pb2 as pb
from tests.session.message_strategies import messages


@given(messages)
def test_every_message_round_trips(message: msg.Message) -> None:
    assert msg.parse_content(msg.content_to_proto(message)) == message


@given(messages)
def test_truncated_content_gives_a_typed_error_or_a_message(message: msg.Message) -> None:
    data = msg.content_to_proto(message)
    for cut in range(len(data)):
        try:
            decoded = msg.parse_content(data[:cut])
        except ContentDecodeError:
            continue
        assert isinstance(decoded, msg.ContentFields)


@given(st.binary(max_size=300))
def test_random_bytes_give_a_typed_error_or_a_message(data: bytes) -> None:
    try:
        decoded = msg.parse_content(data)
    except ContentDecodeError:
        return
    assert isinstance(decoded, msg.ContentFields)


def test_visible_message_wire_fields() -> None:
    message = msg.VisibleMessage(
        body="hello",
        profile=msg.Profile("Alice", "http://f/file/1", b"k" * 32),
        quote=msg.Quote(123, "05" + "ab" * 32),
        expiry=msg.Expiry(msg.ExpiryMode.DELETE_AFTER_SEND, 86400),
        sig_timestamp=1700000000000,
    )
    content = pb.Content.FromString(msg.content_to_proto(message))
    assert content.dataMessage.body == "hello"
    assert content.dataMessage.profile.displayName == "Alice"
    assert content.dataMessage.profile.profilePicture == "http://f/file/1"
    assert content.dataMessage.profileKey == b"k" * 32
    assert (content.dataMessage.quote.id, content.dataMessage.quote.author) == (
        123,
        "05" + "ab" * 32,
    )
    assert content.expirationType == pb.Content.DELETE_AFTER_SEND
    assert content.expirationTimer == 86400
    assert content.sigTimestamp == 1700000000000


def test_disappearing_settings_use_flag_2_and_content_timer() -> None:
    data = msg.content_to_proto(msg.DisappearingSettings(msg.ExpiryMode.DELETE_AFTER_READ, 300))
    content = pb.Content.FromString(data)
    assert content.dataMessage.flags == 2
    assert content.expirationType == pb.Content.DELETE_AFTER_READ
    assert content.expirationTimer == 300


def test_attachment_pointer_sends_deprecated_id_zero() -> None:
    data = msg.content_to_proto(msg.VisibleMessage(attachments=(msg.Attachment(url="u"),)))
    pointer = pb.Content.FromString(data).dataMessage.attachments[0]
    assert pointer.HasField("deprecated_id") and pointer.deprecated_id == 0
    assert pointer.url == "u"


def test_reaction_group_update_and_unsend_field_numbers() -> None:
    reaction = pb.Content.FromString(
        msg.content_to_proto(msg.Reaction(5, "05" + "00" * 32, "👍", msg.ReactionAction.REMOVE))
    )
    assert reaction.dataMessage.reaction.action == pb.DataMessage.Reaction.REMOVE
    unsend = pb.Content.FromString(msg.content_to_proto(msg.Unsend(7, "05" + "11" * 32)))
    assert unsend.unsendRequest.timestamp == 7
    left = pb.Content.FromString(msg.content_to_proto(msg.GroupMemberLeft()))
    assert left.dataMessage.groupUpdateMessage.HasField("memberLeftMessage")


def test_sig_timestamp_zero_counts_as_absent() -> None:
    content = pb.Content(sigTimestamp=0)
    content.typingMessage.timestamp = 1
    content.typingMessage.action = pb.TypingMessage.STOPPED
    decoded = msg.parse_content(content.SerializeToString())
    assert decoded == msg.Typing(False, 1)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_unknown_and_pro_fields_do_not_break_parsing() -> None:
    data_message = _field(1, b"hi") + _field(200, b"future")  # DataMessage field 200: unknown
    # Pro (§2.10): proMessage 16 with a proof laid out the desktop way (fields 1-5 inside
    # field 1, and field 2 as bytes where we declare a varint), proSig... 17, plus an unknown
    # Content field 99 (varint).
    proof = _field(1, b"\x01") + _field(2, b"h" * 32) + _field(3, b"k" * 32) + _field(5, b"s" * 64)
    pro_message = _field(1, proof) + _field(2, b"not a varint")
    data = (
        _field(1, data_message)
        + _field(16, pro_message)
        + _field(17, b"s" * 64)
        + _varint(99 << 3)
        + _varint(1)
    )
    decoded = msg.parse_content(data)
    assert isinstance(decoded, msg.VisibleMessage)
    assert decoded.body == "hi"


def test_content_with_only_unknown_fields_is_unsupported() -> None:
    decoded = msg.parse_content(bytes.fromhex("980601"))
    assert decoded == msg.UnsupportedContent("unknown", bytes.fromhex("980601"))
    assert msg.parse_content(b"") == msg.UnsupportedContent("empty", b"")


def test_call_and_delivery_receipt_are_unsupported_but_kept() -> None:
    call = pb.Content()
    call.callMessage.type = pb.CallMessage.OFFER
    call.callMessage.uuid = "x"
    raw = call.SerializeToString()
    assert msg.parse_content(raw) == msg.UnsupportedContent("callMessage", raw)
    receipt = pb.Content()
    receipt.receiptMessage.type = pb.ReceiptMessage.DELIVERY
    decoded = msg.parse_content(receipt.SerializeToString())
    assert isinstance(decoded, msg.UnsupportedContent) and decoded.kind == "deliveryReceipt"


def test_missing_required_field_is_a_typed_error() -> None:
    dm = b"\x0a\x02hi" + b"\x42\x02\x08\x05"  # body + quote{id=5} without the required author
    with pytest.raises(msg.MissingField, match="author"):
        msg.parse_content(b"\x0a" + bytes([len(dm)]) + dm)
    with pytest.raises(msg.MissingField):
        msg.parse_content(b"\x32\x02\x08\x01")  # typingMessage without its action


def test_invalid_utf8_text_is_decoded_leniently() -> None:
    dm = b"\x0a\x03a\xffb"
    decoded = msg.parse_content(b"\x0a" + bytes([len(dm)]) + dm)
    assert isinstance(decoded, msg.VisibleMessage)
    assert decoded.body == "a\ufffdb"


def test_malformed_protobuf_is_a_typed_error() -> None:
    with pytest.raises(msg.MalformedContent):
        msg.parse_content(b"\x0a\x05ab")  # length runs past the end


@pytest.mark.parametrize(
    "message",
    [
        msg.Unsend(-1, "05"),
        msg.Typing(True, 2**64),
        msg.VisibleMessage(body="\ud800"),
        msg.UnsupportedContent("callMessage"),
        msg.DisappearingSettings(msg.ExpiryMode.OFF, 0, expiry=msg.Expiry(msg.ExpiryMode.OFF, 0)),
        msg.GroupInfoChange(msg.GroupInfoChangeType.NAME, b"", updated_expiration=-5),
    ],
)
def test_unencodable_messages_raise_invalid_message(message: msg.Message) -> None:
    with pytest.raises(msg.InvalidMessage) as caught:
        msg.content_to_proto(message)
    assert isinstance(caught.value, SessionError)


def test_secrets_stay_out_of_repr() -> None:
    seed = bytes(range(32))
    promote = msg.GroupPromote(seed, "group")
    assert seed.hex() not in repr(promote) and repr(seed) not in repr(promote)
    profile = msg.Profile("a", avatar_key=b"\x01" * 32)
    assert "avatar_key" not in repr(profile)
    attachment = msg.Attachment(key=b"\x02" * 64)
    assert repr(b"\x02" * 64) not in repr(attachment)
