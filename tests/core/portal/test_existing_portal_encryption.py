"""encryption.require in existing portals (README, Encryption): which events are refused."""

from __future__ import annotations

from mautrix.types import (
    EventID,
    EventType,
    MessageEvent,
    ReactionEvent,
    ReactionEventContent,
    RedactionEvent,
    RedactionEventContent,
    RelatesTo,
    RelationType,
    RoomID,
    TextMessageEventContent,
    UserID,
)

from bridge.core.portal.encryption_policy import EncryptionPolicy


class Rooms:
    def __init__(self, *, require: bool, encrypted: set[str]) -> None:
        self.allow_encrypted = True
        self.require_encrypted = require
        self.encrypted = encrypted
        self.reads = 0

    async def is_encrypted(self, room_id: str) -> bool:
        self.reads += 1
        return room_id in self.encrypted


def message(room: str) -> MessageEvent:
    return MessageEvent(
        type=EventType.ROOM_MESSAGE,
        room_id=RoomID(room),
        event_id=EventID("$m"),
        sender=UserID("@a:x"),
        timestamp=0,
        content=TextMessageEventContent(body="hi"),
    )


def reaction(room: str) -> ReactionEvent:
    relates = RelatesTo(rel_type=RelationType.ANNOTATION, event_id=EventID("$m"), key="👍")
    return ReactionEvent(
        type=EventType.REACTION,
        room_id=RoomID(room),
        event_id=EventID("$r"),
        sender=UserID("@a:x"),
        timestamp=0,
        content=ReactionEventContent(relates_to=relates),
    )


def redaction(room: str) -> RedactionEvent:
    return RedactionEvent(
        type=EventType.ROOM_REDACTION,
        room_id=RoomID(room),
        event_id=EventID("$d"),
        sender=UserID("@a:x"),
        timestamp=0,
        redacts=EventID("$m"),
        content=RedactionEventContent(),
    )


async def test_without_require_nothing_is_refused_and_no_state_is_read() -> None:
    rooms = Rooms(require=False, encrypted=set())
    policy = EncryptionPolicy(rooms)
    assert await policy.refusal("!plain:x", message("!plain:x")) is None
    assert rooms.reads == 0


async def test_with_require_messages_and_reactions_of_unencrypted_rooms_are_refused() -> None:
    rooms = Rooms(require=True, encrypted={"!enc:x"})
    policy = EncryptionPolicy(rooms)
    refused = await policy.refusal("!plain:x", message("!plain:x"))
    assert refused is not None and refused.startswith("Your message was not sent")
    refused = await policy.refusal("!plain:x", reaction("!plain:x"))
    assert refused is not None and refused.startswith("Your reaction was not sent")
    # A redaction is never encrypted: it passes.
    assert await policy.refusal("!plain:x", redaction("!plain:x")) is None
    assert await policy.refusal("!enc:x", message("!enc:x")) is None


async def test_an_encrypted_room_is_read_once_and_one_that_became_encrypted_never() -> None:
    rooms = Rooms(require=True, encrypted={"!enc:x"})
    policy = EncryptionPolicy(rooms)
    for _ in range(3):
        assert await policy.refusal("!enc:x", message("!enc:x")) is None
    assert rooms.reads == 1
    policy.became_encrypted("!late:x")
    assert await policy.refusal("!late:x", message("!late:x")) is None
    assert rooms.reads == 1
