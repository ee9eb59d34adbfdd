"""Telling a Matrix user that their message did not reach Session: an ``m.notice`` replying
to it (mentioning them) and a failed ``com.beeper.message_send_status`` event for it.

Used by :class:`~bridge.core.portal.events.PortalEvents` when a handler refuses an event and
by the outbox sender when a queued row fails for good. The outbox sender also says when a
message has waited past the outage threshold because Session cannot be reached (a notice and a
*retriable* send-status), and again when it went through (a notice and a success status):
docs/architecture.md §4.7.
"""

from __future__ import annotations

import re

from mautrix.appservice import IntentAPI
from mautrix.types import RoomID

from bridge.core.portal.payloads import payload_sender
from bridge.db.records import OutboxRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.send import (
    MSS_EVENT_TYPE,
    derived_txn_id,
    notice_content,
    send_content,
    send_status_content,
)

# URLs, bracketed IPv6 and IPv4 addresses (with ports), and host:port pairs (not the server
# name of a Matrix id: ``@bot:example.org:8448`` stays).
_ADDRESS = re.compile(
    r"\b[a-z][a-z0-9+.-]*://[^\s)\]>\"']*[^\s)\]>\"'.,:;]"
    r"|\[[0-9a-f:.]{2,45}\](?::\d{1,5})?"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"
    r"|(?<![\w:@.-])(?=[a-z0-9.-]*[a-z])[a-z0-9][a-z0-9.-]*:\d{2,5}\b",
    re.IGNORECASE | re.ASCII,
)


def without_addresses(text: str) -> str:
    """``text`` with every server address replaced by ``<server>``: failure reasons are
    written for users, and the addresses inside an operator's network are none of their
    business (the details are in the log). A last line of defence: reasons should not carry
    addresses in the first place."""
    return _ADDRESS.sub("<server>", text)


# Events whose sender expects them to reach Session (state changes are not answered).
PARKED_EVENT_TYPES = frozenset({"m.room.message", "m.sticker", "m.reaction", "m.room.redaction"})


class FailureNotices:
    """Reports failures to the sender of the Matrix event that failed."""

    def __init__(self, *, portals: PortalRepo, bot: IntentAPI) -> None:
        self._portals = portals
        self._bot = bot

    async def on_outbox_failed(self, row: OutboxRecord, reason: str) -> None:
        """The outbox gave up on ``row``: tell its sender in the room."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.mxid is None or row.matrix_event_id is None:
            return
        sender = payload_sender(row.payload)
        text = f"Not sent to Session: {reason}"
        await self.tell_failure(portal.mxid, row.matrix_event_id, sender, text)

    async def on_event_parked(self, event: dict[str, object]) -> None:
        """A user's Matrix event failed for good and was parked: tell them (no internals)."""
        event_id, room_id, sender = (
            str(event.get(k) or "") for k in ("event_id", "room_id", "sender")
        )
        if not (event_id and room_id and sender) or event.get("type") not in PARKED_EVENT_TYPES:
            return
        text = (
            "The bridge could not handle this message (an internal error). A bridge admin can "
            "see it with `deadletters` and try it again with `retry`."
        )
        await self.tell_failure(room_id, event_id, sender, text)

    async def on_outbox_delayed(self, row: OutboxRecord, reason: str) -> None:
        """``row`` has waited past the outage threshold: tell its sender it is queued."""
        text = (
            f"Session is unreachable ({reason}); your messages are queued and will be sent "
            "when it is back."
        )
        await self._tell_progress(row, text, ok=False)

    async def on_outbox_recovered(self, row: OutboxRecord) -> None:
        """A row whose sender was told it is queued (:meth:`on_outbox_delayed`) went through."""
        text = "Session is reachable again: your queued messages are being sent."
        await self._tell_progress(row, text, ok=True)

    async def _tell_progress(self, row: OutboxRecord, text: str, *, ok: bool) -> None:
        """A notice replying to the row's event, and its send-status: retriable while it
        waits, success once it went through."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.mxid is None or row.matrix_event_id is None:
            return
        event_id, sender = row.matrix_event_id, payload_sender(row.payload)
        text = without_addresses(text)
        content = notice_content(text)
        if sender:
            content["m.mentions"] = {"user_ids": [sender]}
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event_id}}
        purpose = "back" if ok else "delayed"
        await self._bot.send_message(
            RoomID(portal.mxid), content, txn_id=derived_txn_id(f"{purpose}-notice", event_id)
        )
        if ok:
            status = send_status_content(event_id, ok=True)
        else:
            status = send_status_content(event_id, ok=False, message=text, retriable=True)
        await send_content(
            self._bot,
            portal.mxid,
            status,
            event_type=MSS_EVENT_TYPE,
            txn_id=derived_txn_id(f"mss-{purpose}", event_id),
        )

    async def tell_failure(self, room_id: str, event_id: str, sender: str, text: str) -> None:
        """An ``m.notice`` (mentioning the sender) and a failed send-status for ``event_id``."""
        text = without_addresses(text)
        content = notice_content(text)
        if sender:
            content["m.mentions"] = {"user_ids": [sender]}
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event_id}}
        await self._bot.send_message(
            RoomID(room_id), content, txn_id=derived_txn_id("fail-notice", event_id)
        )
        status = send_status_content(event_id, ok=False, message=text)
        await send_content(
            self._bot,
            room_id,
            status,
            event_type=MSS_EVENT_TYPE,
            txn_id=derived_txn_id("mss", event_id),
        )
