"""Wiring of the failure policy's outbox and dead letters (docs/architecture.md §4.7), kept
out of bridge/app.py: the :class:`OutboxSender` over every kind's deliverers, and what failed
for good parked in the dead-letter table (and taken back by ``retry``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bridge.core.portal.deadletters import DeadLetters, payload_of
from bridge.core.portal.inbox import MatrixInbox, describe_event
from bridge.core.portal.kind import ConversationKind
from bridge.core.portal.notices import FailureNotices
from bridge.core.portal.outbox import OutboxSender
from bridge.db.records import DeadLetterPath, DeadLetterRecord, OutboxRecord
from bridge.db.repos.outbox import OutboxRepo
from bridge.metrics_wiring import count_delivered

__all__ = ["Parking", "build_outbox", "requeue_event", "requeue_row"]

log = logging.getLogger("bridge.app_failures")

Requeue = Callable[[DeadLetterRecord], Awaitable[None]]


class Parking:
    """Matrix events and outbox rows that failed for good go to the dead-letter table; the
    sender of a parked event is told once :attr:`notices` exist (built with the kinds)."""

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.notices: FailureNotices | None = None

    async def park_event(self, event: dict[str, object], error: str, tries: int) -> None:
        what = describe_event(event)
        await self.dead_letters.park(
            DeadLetterPath.MATRIX, what, {"event": event}, error, attempts=tries
        )
        if self.notices is not None:
            try:  # parked already: a notice that cannot be sent must not park it again
                await self.notices.on_event_parked(event)
            except Exception:
                log.warning("Could not tell the sender of %s that it failed", what, exc_info=True)

    async def park_row(self, row: OutboxRecord, error: str, tries: int) -> None:
        what = f"outbox row {row.id} ({row.kind}) of Matrix event {row.matrix_event_id}"
        await self.dead_letters.park(
            DeadLetterPath.OUTBOX,
            what,
            {"outbox_id": row.id},
            error,
            attempts=tries,
            portal_id=row.portal_id,
        )


def requeue_event(inbox: MatrixInbox) -> Requeue:
    """``retry`` of a parked Matrix event: handled again by the inbox."""

    async def requeue(record: DeadLetterRecord) -> None:
        event = payload_of(record).get("event")
        if not isinstance(event, dict):
            raise ValueError("the parked item holds no Matrix event")
        await inbox.requeue(event, f"retry:{record.id}")

    return requeue


def requeue_row(outbox: OutboxRepo, sender: OutboxSender) -> Requeue:
    """``retry`` of a parked outbox row: pending again, and the sender looks now."""

    async def requeue(record: DeadLetterRecord) -> None:
        outbox_id = int(payload_of(record)["outbox_id"])
        if not await outbox.requeue_failed(outbox_id):
            raise ValueError(f"outbox row {outbox_id} is gone or no longer failed")
        sender.wake()

    return requeue


def build_outbox(
    outbox: OutboxRepo,
    kinds: Sequence[ConversationKind],
    notices: FailureNotices,
    park: Callable[[OutboxRecord, str, int], Awaitable[None]],
    delay_notice_after: float,
) -> OutboxSender:
    """The sender of every kind's rows; the app runs it once the kinds have started."""
    return OutboxSender(
        outbox,
        {row_kind: deliver for k in kinds for row_kind, deliver in k.deliverers.items()},
        on_failed=notices.on_outbox_failed,
        on_delayed=notices.on_outbox_delayed,
        on_recovered=notices.on_outbox_recovered,
        # Matrix → Session events, counted under the kind that delivers the row.
        on_delivered=count_delivered(
            {row_kind: k.portal_kind.value for k in kinds for row_kind in k.deliverers}
        ),
        park=park,
        delay_notice_after=delay_notice_after,
    )
