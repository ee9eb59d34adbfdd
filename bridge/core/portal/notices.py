"""Telling a Matrix user that their message did not reach Session: an ``m.notice`` replying
to it (mentioning them) and a failed ``com.beeper.message_send_status`` event for it.

Used by :class:`~bridge.core.portal.events.PortalEvents` when a handler refuses an event and
by the outbox sender when a queued row fails for good.
"""

from __future__ import annotations

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

    async def tell_failure(self, room_id: str, event_id: str, sender: str, text: str) -> None:
        """An ``m.notice`` (mentioning the sender) and a failed send-status for ``event_id``."""
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
