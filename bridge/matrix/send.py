"""Shapes of what the bridge sends to Matrix (docs/matrix-side.md §2.8, §3.6)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, cast

import commonmark  # type: ignore[import-untyped]
from mautrix.api import Method
from mautrix.api import Path as ClientPath
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import (
    BeeperMessageStatusEventContent,
    EventID,
    EventType,
    Format,
    MessageStatus,
    MessageStatusReason,
    MessageType,
    RelatesTo,
    RelationType,
    RoomID,
    SerializableAttrs,
    TextMessageEventContent,
)

log = logging.getLogger("bridge.matrix.send")


def notice_content(markdown: str) -> TextMessageEventContent:
    """An ``m.notice`` rendered from Markdown, with an empty ``m.mentions`` (it pings no one)."""
    html = commonmark.commonmark(markdown).strip()
    content = TextMessageEventContent(
        msgtype=MessageType.NOTICE, body=markdown, format=Format.HTML, formatted_body=html
    )
    content["m.mentions"] = {}
    return content


def derived_txn_id(purpose: str, source_id: str) -> str:
    """A transaction id that is a stable function of what caused the send, so a re-delivered
    cause reuses the id and Synapse returns the first event instead of a duplicate (§1.8)."""
    digest = hashlib.sha256(f"{purpose}\0{source_id}".encode()).hexdigest()[:32]
    return f"{purpose}.{digest}"


async def send_notice(
    intent: IntentAPI, room_id: str, markdown: str, *, txn_id: str | None = None
) -> EventID:
    """Send a Markdown notice as ``intent``."""
    event_id: EventID = await intent.send_message(
        RoomID(room_id), notice_content(markdown), txn_id=txn_id
    )
    return event_id


#: Transaction ids of sends that went out but got no answer (the connection broke): the
#: homeserver may have stored the event, and Synapse forgets an appservice's transaction ids
#: when it restarts (docs/matrix-side.md §1.8), so the next send of such an id looks for the
#: event in the room first. Insertion-ordered, the oldest forgotten past the cap.
_unanswered: dict[str, None] = {}
UNANSWERED_MAX = 10_000
#: How many of the room's latest events that look covers.
LOOKBACK = 100


def _may_have_arrived(error: BaseException) -> bool:
    """Whether a failed send may still have reached the homeserver. Any connection error: even
    "cannot connect" may follow a request that arrived, since aiohttp sends an idempotent
    request (a PUT) once more on a new connection when a kept-alive one is closed under it."""
    return isinstance(error, MatrixConnectionError | TimeoutError)


def _remember_unanswered(txn_id: str) -> None:
    _unanswered[txn_id] = None
    while len(_unanswered) > UNANSWERED_MAX:
        del _unanswered[next(iter(_unanswered))]


async def _already_sent(
    intent: IntentAPI,
    room_id: str,
    event_type: EventType,
    content: Mapping[str, Any] | SerializableAttrs,
    timestamp: int,
) -> EventID | None:
    """The event of an unanswered send, if the room's latest events hold it: same sender,
    type, timestamp (the appservice's massaged ``ts``) and body."""
    raw = await intent.api.request(
        Method.GET,
        ClientPath.v3.rooms[RoomID(room_id)].messages,
        query_params={"dir": "b", "limit": str(LOOKBACK)},
    )
    data = content.serialize() if isinstance(content, SerializableAttrs) else dict(content)
    chunk = raw.get("chunk") if isinstance(raw, dict) else None
    for event in chunk if isinstance(chunk, list) else []:
        if (
            isinstance(event, dict)
            and event.get("sender") == intent.mxid
            and event.get("type") == str(event_type)
            and event.get("origin_server_ts") == timestamp
            and isinstance(event.get("content"), dict)
            and event["content"].get("body") == data.get("body")
            and isinstance(event.get("event_id"), str)
        ):
            return EventID(event["event_id"])
    return None


async def send_content(
    intent: IntentAPI,
    room_id: str,
    content: Mapping[str, Any] | SerializableAttrs,
    *,
    txn_id: str,
    event_type: EventType = EventType.ROOM_MESSAGE,
    timestamp: int | None = None,
) -> EventID:
    """Send a content dict (mautrix sends dicts as they are) or typed content as ``intent``.

    ``txn_id`` should come from :func:`derived_txn_id`; ``timestamp`` (ms) is the
    appservice's timestamp massaging, so the event shows when it was sent on the other side.
    A send of ``txn_id`` that got no answer before is first looked for in the room (with a
    ``timestamp`` only), so a homeserver restart in between does not make a second event.
    """
    if txn_id in _unanswered and timestamp is not None:
        found = await _already_sent(intent, room_id, event_type, content, timestamp)
        if found is not None:
            log.info("An unanswered send (%s) had arrived as %s", txn_id, found)
            del _unanswered[txn_id]
            return found
    try:
        event_id: EventID = await intent.send_message_event(
            RoomID(room_id), event_type, cast(Any, content), txn_id=txn_id, timestamp=timestamp
        )
    except Exception as e:
        if _may_have_arrived(e):
            _remember_unanswered(txn_id)
        raise
    _unanswered.pop(txn_id, None)
    return event_id


async def is_redacted(intent: IntentAPI, room_id: str, event_id: str) -> bool:
    """Whether ``event_id`` has been redacted already (its ``unsigned.redacted_because``)."""
    raw = await intent.api.request(
        Method.GET, ClientPath.v3.rooms[RoomID(room_id)].event[EventID(event_id)]
    )
    unsigned = raw.get("unsigned") if isinstance(raw, dict) else None
    return isinstance(unsigned, dict) and "redacted_because" in unsigned


async def redact_once(intent: IntentAPI, room_id: str, event_id: str, reason: str) -> None:
    """Redact ``event_id`` as ``intent`` unless it is redacted already.

    Synapse accepts a redaction of a redacted event and adds one more redaction event to the
    room (§2.8); the same message may reach several redacting paths (e.g. a community post a
    Matrix user deleted comes back from the poll as deleted, a command is handled again after
    a retry), so every redaction checks first.
    """
    try:
        if await is_redacted(intent, room_id, event_id):
            log.debug("%s is already redacted", event_id)
            return
    except MatrixRequestError as e:
        log.debug("Could not read %s (%s); redacting it anyway", event_id, e)
    await intent.redact(RoomID(room_id), EventID(event_id), reason=reason)


async def redact_quietly(intent: IntentAPI, room_id: str, event_id: str, reason: str) -> None:
    """Redact ``event_id`` as ``intent`` (once, see :func:`redact_once`); a refusal (gone
    already, no power) is only logged."""
    try:
        await redact_once(intent, room_id, event_id, reason)
    except MatrixRequestError as e:
        log.warning("Could not redact %s: %s", event_id, e)


def reaction_content(event_id: str, key: str) -> dict[str, Any]:
    """An ``m.reaction`` to ``event_id`` (MSC2677, docs/matrix-side.md §2.8)."""
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


#: The event type of :func:`send_status_content`.
MSS_EVENT_TYPE = EventType.BEEPER_MESSAGE_STATUS


def send_status_content(
    event_id: str,
    *,
    ok: bool,
    reason: MessageStatusReason = MessageStatusReason.NETWORK_ERROR,
    message: str = "",
    retriable: bool = False,
) -> BeeperMessageStatusEventContent:
    """A ``com.beeper.message_send_status`` event about ``event_id`` (docs/matrix-side.md §3.2);
    a failure has a ``reason`` and a ``message``."""
    relates = RelatesTo(rel_type=RelationType.REFERENCE, event_id=EventID(event_id))
    if ok:
        return BeeperMessageStatusEventContent(
            relates_to=relates, network="session", status=MessageStatus.SUCCESS
        )
    return BeeperMessageStatusEventContent(
        relates_to=relates,
        network="session",
        status=MessageStatus.RETRIABLE if retriable else MessageStatus.FAIL,
        reason=reason,
        message=message,
    )
