"""What a Matrix sender is told under the failure policy (docs/architecture.md §4.7): a message
that waits for Session past the threshold (a notice and a retriable status), its going through
(a notice and a success status), and an event parked after a bug (a notice without internals)."""

from __future__ import annotations

from typing import Any, cast

from bridge.core.portal.notices import FailureNotices
from bridge.db.records import OutboxRecord, OutboxStatus, PortalKind, PortalRecord


class FakeBot:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    async def send_message(self, room_id: str, content: Any, txn_id: str) -> str:
        self.sent.append(("m.room.message", content.serialize(), txn_id))
        return "$notice"

    async def send_message_event(
        self, room_id: str, event_type: Any, content: Any, txn_id: str, timestamp: Any = None
    ) -> str:
        self.sent.append((str(event_type), content.serialize(), txn_id))
        return "$status"


class Portals:
    async def get_by_id(self, portal_id: int) -> PortalRecord:
        return PortalRecord(
            portal_id, PortalKind.COMMUNITY, "k", "!room:x", None, None, None, None,
            False, None, False, 0, None,
        )  # fmt: skip


ROW = OutboxRecord(
    7, 1, None, "sogs_post", '{"sender": "@alice:x"}', OutboxStatus.SENDING, 3, 0, None, "$ev",
    0, 0,
)  # fmt: skip


async def test_a_waiting_message_and_its_recovery_are_told() -> None:
    bot = FakeBot()
    notices = FailureNotices(portals=cast(Any, Portals()), bot=cast(Any, bot))
    await notices.on_outbox_delayed(ROW, "the community server cannot be reached")
    await notices.on_outbox_recovered(ROW)
    (_, delayed, _), (_, waiting, _), (_, back, _), (_, sent, _) = bot.sent
    assert delayed["body"] == (
        "Session is unreachable (the community server cannot be reached); your messages are "
        "queued and will be sent when it is back."
    )
    assert delayed["m.relates_to"] == {"m.in_reply_to": {"event_id": "$ev"}}
    assert delayed["m.mentions"] == {"user_ids": ["@alice:x"]}
    assert waiting["status"] == "FAIL_RETRIABLE"
    assert back["body"] == "Session is reachable again: your queued messages are being sent."
    assert sent["status"] == "SUCCESS"
    assert len({txn for *_, txn in bot.sent}) == 4  # each its own idempotent send


async def test_a_parked_user_event_is_told_without_internals() -> None:
    bot = FakeBot()
    notices = FailureNotices(portals=cast(Any, Portals()), bot=cast(Any, bot))
    event = {"type": "m.room.message", "event_id": "$e", "room_id": "!r:x", "sender": "@bob:x"}
    await notices.on_event_parked(event)
    (_, notice, _), (_, status, _) = bot.sent
    assert notice["body"].startswith("The bridge could not handle this message (an internal")
    assert status["status"] == "FAIL_PERMANENT"
    await notices.on_event_parked({**event, "type": "m.room.member"})  # state: nothing said
    assert len(bot.sent) == 2
