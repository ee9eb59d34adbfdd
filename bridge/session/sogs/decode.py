"""Server JSON → typed community results (docs/session-protocol.md §5.4-§5.11).

Shape errors raise :class:`InvalidCommunityReply`. Message and inbox *content* errors
(signature, base64, padding, protobuf, decryption) do not raise: they are kept in the
item's ``error`` so one bad post never hides the others.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.ids import BlindedID, InvalidId, SessionID, parse_any_id
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.messages import Message, parse_content
from bridge.session.padding import unpad_message
from bridge.session.sogs.auth import b64decode_strict
from bridge.session.sogs.errors import InvalidCommunityReply
from bridge.session.sogs.inbox import decrypt_blinded_message
from bridge.session.sogs.models import (
    CommunityMessage,
    InboxEntry,
    ReactionSummary,
    ReactionUpdate,
    RoomInfo,
    RoomPollInfo,
)
from bridge.session.sogs.posts import PostAuthor, verify_post_fields

__all__ = [
    "decode_inbox_item",
    "decode_message",
    "decode_poll_info",
    "decode_room",
    "field",
    "int_field",
    "number_field",
]


def field(obj: object, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[key]`` checked to be of ``kind`` (bools are not ints)."""
    if not isinstance(obj, dict):
        raise InvalidCommunityReply(f"{where}: expected a JSON object")
    value = obj.get(key)
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        value = None
    if not isinstance(value, kind):
        raise InvalidCommunityReply(f"{where}: missing or invalid {key!r}")
    return value


def int_field(obj: object, key: str, where: str) -> int:
    """An integer field."""
    value: int = field(obj, key, int, where)
    return value


def _number(value: object) -> float | None:
    """A finite JSON number as float, else ``None`` (bools and huge ints are not times)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def number_field(obj: object, key: str, where: str) -> float:
    """A numeric field (Unix seconds)."""
    number = _number(obj.get(key) if isinstance(obj, dict) else None)
    if number is None:
        raise InvalidCommunityReply(f"{where}: missing or invalid {key!r}")
    return number


def _text(obj: object, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def decode_room(obj: object) -> RoomInfo:
    """A room object (§5.4)."""
    where = "room"
    image = obj.get("image_id") if isinstance(obj, dict) else None
    return RoomInfo(
        token=field(obj, "token", str, where),
        name=field(obj, "name", str, where),
        description=_text(obj, "description"),
        info_updates=int_field(obj, "info_updates", where),
        message_sequence=int_field(obj, "message_sequence", where),
        active_users=int_field(obj, "active_users", where),
        image_id=image if isinstance(image, int) and not isinstance(image, bool) else None,
        read=bool(field(obj, "read", bool, where)),
        write=bool(field(obj, "write", bool, where)),
        upload=bool(field(obj, "upload", bool, where)),
    )


def decode_poll_info(obj: object) -> RoomPollInfo:
    """``pollInfo`` (§5.4)."""
    where = "pollInfo"
    details = obj.get("details") if isinstance(obj, dict) else None
    return RoomPollInfo(
        token=field(obj, "token", str, where),
        active_users=int_field(obj, "active_users", where),
        read=bool(field(obj, "read", bool, where)),
        write=bool(field(obj, "write", bool, where)),
        upload=bool(field(obj, "upload", bool, where)),
        details=decode_room(details) if details is not None else None,
    )


def _reactions(obj: dict[str, Any], where: str) -> tuple[ReactionSummary, ...]:
    raw = obj.get("reactions") or {}
    if not isinstance(raw, dict):
        raise InvalidCommunityReply(f"{where}: reactions must be an object")
    out = []
    for emoji, info in raw.items():
        reactors = info.get("reactors", []) if isinstance(info, dict) else []
        if not isinstance(reactors, list) or not all(isinstance(r, str) for r in reactors):
            raise InvalidCommunityReply(f"{where}: reactors must be a list of ids")
        out.append(
            ReactionSummary(
                emoji=emoji,
                index=int_field(info, "index", where),
                count=int_field(info, "count", where),
                reactors=tuple(reactors),
                you=info.get("you") is True,
            )
        )
    return tuple(sorted(out, key=lambda r: r.index))


def _content(
    session_id: object, data: object, signature: object
) -> tuple[PostAuthor | None, bytes | None, Message | None, SessionError | None]:
    """Verify (§5.11), unpad (§2.12) and parse a post; errors are returned, not raised."""
    if not isinstance(session_id, str) or not isinstance(data, str):
        return None, None, None, InvalidCommunityReply("message without session_id or data")
    try:
        verified = verify_post_fields(
            session_id, data, signature if isinstance(signature, str) else ""
        )
    except SessionError as exc:
        return None, None, None, exc
    try:
        return verified.author, verified.data, parse_content(unpad_message(verified.data)), None
    except SessionError as exc:
        return verified.author, verified.data, None, exc


def decode_message(room: str, obj: object) -> CommunityMessage | ReactionUpdate:
    """One ``messages/since`` item: a message (new/edited/deleted) or a reaction update."""
    where = f"room {room} message"
    ident, seqno = int_field(obj, "id", where), int_field(obj, "seqno", where)
    assert isinstance(obj, dict)
    reactions = _reactions(obj, where)
    if "data" not in obj and "session_id" not in obj:  # t=r reaction-only item (§5.5)
        return ReactionUpdate(room, ident, seqno, reactions)
    posted = number_field(obj, "posted", where)
    edited = _number(obj.get("edited"))
    whisper = _whisper(obj)
    if obj.get("data") is None:  # deleted (§5.5): no data, no signature
        author = _author_or_none(obj.get("session_id"))
        return CommunityMessage(
            room, ident, seqno, author, posted, edited, True, None, None, reactions, None, *whisper
        )
    author, data, content, error = _content(
        obj.get("session_id"), obj["data"], obj.get("signature")
    )
    return CommunityMessage(
        room,
        ident,
        seqno,
        author,
        posted,
        edited,
        False,
        content,
        error,
        reactions,
        data,
        *whisper,
    )


def _whisper(obj: dict[str, Any]) -> tuple[bool, str | None, bool]:
    """``(whisper, whisper_to, whisper_mods)`` of a message object (§5.5). Any of the three
    marks a whisper, so a server that omits ``whisper`` still cannot make one look public."""
    raw_to = obj.get("whisper_to")
    to = raw_to if isinstance(raw_to, str) and raw_to else None
    mods = bool(obj.get("whisper_mods"))
    return bool(obj.get("whisper")) or mods or raw_to not in (None, ""), to, mods


def _author_or_none(value: object) -> PostAuthor | None:
    if not isinstance(value, str):
        return None
    try:
        author = parse_any_id(value)
    except InvalidId:
        return None
    return author if isinstance(author, SessionID | BlindedID) else None


def decode_inbox_item(
    identity: Identity, server_pubkey: bytes, obj: object, *, outgoing: bool
) -> InboxEntry:
    """An inbox/outbox item (§5.10), decrypted; decryption errors go into ``error``."""
    where = "outbox item" if outgoing else "inbox item"
    ident = int_field(obj, "id", where)
    posted = number_field(obj, "posted_at", where)
    try:
        sender = BlindedID.parse(field(obj, "sender", str, where))
        recipient = BlindedID.parse(field(obj, "recipient", str, where))
    except InvalidId as exc:
        raise InvalidCommunityReply(f"{where}: sender/recipient are not blinded ids") from exc
    message = field(obj, "message", str, where)
    try:
        payload = b64decode_strict(message)
        opened = decrypt_blinded_message(identity, server_pubkey, sender, recipient, payload)
        content = parse_content(unpad_message(opened.plaintext))
    except SessionError as exc:
        return InboxEntry(ident, posted, sender, recipient, outgoing, None, None, exc)
    return InboxEntry(ident, posted, sender, recipient, outgoing, opened.sender, content, None)
