"""Shapes of what the bridge sends to Matrix (docs/matrix-side.md §2.8, §3.6)."""

from __future__ import annotations

import hashlib
import logging
import time
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


#: Transaction ids of sends that went out but got no answer (the connection broke), with the
#: wall-clock time (ms) of that send: the homeserver may have stored the event, and Synapse
#: forgets an appservice's transaction ids when it restarts (docs/matrix-side.md §1.8), so the
#: next send of such an id looks for the event in the room first. Insertion-ordered, the
#: oldest forgotten past the cap.
_unanswered: dict[str, int] = {}
UNANSWERED_MAX = 10_000
#: The look goes back page by page (``LOOKBACK`` events each) until it reaches events the
#: homeserver stored before the unanswered send (minus ``LOOKBACK_MARGIN_MS`` for clocks), or
#: ``LOOKBACK_PAGES`` pages: a busy room may have had hundreds of events since.
LOOKBACK = 100
LOOKBACK_PAGES = 10
LOOKBACK_MARGIN_MS = 60_000


def _may_have_arrived(error: BaseException) -> bool:
    """Whether a failed send may still have reached the homeserver. Any connection error: even
    "cannot connect" may follow a request that arrived, since aiohttp sends an idempotent
    request (a PUT) once more on a new connection when a kept-alive one is closed under it."""
    return isinstance(error, MatrixConnectionError | TimeoutError)


def _remember_unanswered(txn_id: str) -> None:
    _unanswered.setdefault(txn_id, int(time.time() * 1000))
    while len(_unanswered) > UNANSWERED_MAX:
        del _unanswered[next(iter(_unanswered))]


def _is_the_send(
    event: object, sender: str, event_type: EventType, body: object, timestamp: int
) -> bool:
    """Same sender, type, timestamp (the appservice's massaged ``ts``) and body."""
    return (
        isinstance(event, dict)
        and event.get("sender") == sender
        and event.get("type") == str(event_type)
        and event.get("origin_server_ts") == timestamp
        and isinstance(event.get("content"), dict)
        and event["content"].get("body") == body
        and isinstance(event.get("event_id"), str)
    )


async def _already_sent(
    intent: IntentAPI,
    room_id: str,
    event_type: EventType,
    content: Mapping[str, Any] | SerializableAttrs,
    timestamp: int,
    sent_at: int,
) -> EventID | None:
    """The event of an unanswered send made at ``sent_at`` (wall clock, ms), if the room holds
    it among the events stored since then."""
    data = content.serialize() if isinstance(content, SerializableAttrs) else dict(content)
    query = {"dir": "b", "limit": str(LOOKBACK)}
    for _ in range(LOOKBACK_PAGES):
        raw = await intent.api.request(
            Method.GET, ClientPath.v3.rooms[RoomID(room_id)].messages, query_params=query
        )
        chunk = raw.get("chunk") if isinstance(raw, dict) else None
        events = chunk if isinstance(chunk, list) else []
        for event in events:
            if _is_the_send(event, intent.mxid, event_type, data.get("body"), timestamp):
                return EventID(event["event_id"])
        # Events of other senders carry the time the homeserver stored them: once a page
        # reaches before the unanswered send, the event is not in the room.
        stamps = [
            e.get("origin_server_ts")
            for e in events
            if isinstance(e, dict) and e.get("sender") != intent.mxid
        ]
        older = [t for t in stamps if isinstance(t, int) and t < sent_at - LOOKBACK_MARGIN_MS]
        end = raw.get("end") if isinstance(raw, dict) else None
        if older or not events or not isinstance(end, str):
            return None
        query = {**query, "from": end}
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
    sent_at = _unanswered.get(txn_id)
    if sent_at is not None and timestamp is not None:
        found = await _already_sent(intent, room_id, event_type, content, timestamp, sent_at)
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
