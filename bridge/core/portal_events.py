"""Matrix events in portal rooms: hand messages to the right outbound path, and tell senders
about messages that did not reach Session (a notice and a send-status event)."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.types import EventType, MessageEvent, RoomID

from bridge.core.community_outbound import CommunityOutbound, MatrixMessage, Refused
from bridge.core.outbox_sender import OutboxSender
from bridge.db.records import OutboxRecord, PortalKind
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.send import MSS_EVENT_TYPE, derived_txn_id, notice_content, send_status_content

log = logging.getLogger("bridge.core.portal_events")

MSS = EventType.find(MSS_EVENT_TYPE, EventType.Class.MESSAGE)


class PortalEvents:
    """Routes Matrix messages of portal rooms to Session."""

    def __init__(
        self,
        *,
        portals: PortalRepo,
        bot: IntentAPI,
        communities: CommunityOutbound,
        sender: OutboxSender,
    ) -> None:
        self._portals = portals
        self._bot = bot
        self._communities = communities
        self._sender = sender

    async def handle_message(self, event: MessageEvent) -> None:
        room_id = str(event.room_id)
        portal = await self._portals.get_by_mxid(room_id)
        if portal is None or portal.unbridged_at is not None:
            return
        sender = str(event.sender)
        name = await self._display_name(room_id, sender)
        message = MatrixMessage(str(event.event_id), sender, name, event.content.serialize())
        try:
            if portal.kind == PortalKind.COMMUNITY:
                await self._communities.enqueue(portal, message)
            else:
                raise Refused("This kind of portal does not bridge messages yet.")
        except Refused as e:
            await self.tell_failure(room_id, str(event.event_id), sender, str(e))
            return
        self._sender.wake()

    async def _display_name(self, room_id: str, mxid: str) -> str:
        try:
            member = await self._bot.get_room_member_info(RoomID(room_id), mxid)  # type: ignore[arg-type]
        except Exception:  # a missing name only makes the relay label plainer
            return mxid
        return (member.displayname if member and member.displayname else None) or mxid

    async def on_outbox_failed(self, row: OutboxRecord, reason: str) -> None:
        """The outbox gave up on ``row``: tell its sender in the room."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.mxid is None or row.matrix_event_id is None:
            return
        sender = json.loads(row.payload).get("sender", "")
        await self.tell_failure(
            portal.mxid, row.matrix_event_id, sender, f"Not sent to Session: {reason}"
        )

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
        await self._bot.send_message_event(
            RoomID(room_id),
            MSS,
            cast(Any, status),  # mautrix serializes plain dicts as they are
            txn_id=derived_txn_id("mss", event_id),
        )
