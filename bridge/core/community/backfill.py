"""What a newly bridged community room brings over from before (README, Backfill).

A room whose cursor was never committed would otherwise be read from ``since/0``: its whole
history, page after page. Instead, like the apps joining a room, the bridge reads the newest
posts with ``/recent`` (docs/session-protocol.md §5.5): at most ``communities.backfill_messages``
of them, and none older than ``communities.backfill_days`` (when set), hands them to the
inbound path oldest first (each sent with its original time, and once: the dedup by post id
covers a repeat), and then commits the room's cursor at the ``message_sequence`` the room had
when it was joined, so the live poll goes on from there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import CommunityMessage, RoomInfo

__all__ = ["MAX_BACKFILL", "BackfillPolicy", "backfill_room"]

MAX_BACKFILL = 256  # the largest ``limit`` a community server's /recent takes (§5.5)
DAY_S = 86_400.0


@dataclass(frozen=True)
class BackfillPolicy:
    """``messages``: how many recent posts (0: none; -1: the whole history from since/0, as
    before this policy); ``days``: none older than that many days (0: no age limit)."""

    messages: int = 50
    days: float = 0.0

    @property
    def replays_all(self) -> bool:
        return self.messages < 0


async def backfill_room(
    client: CommunityClient,
    token: str,
    info: RoomInfo,
    policy: BackfillPolicy,
    handle: Callable[[CommunityMessage], Awaitable[None]],
    *,
    now: Callable[[], float] = time.time,
) -> int:
    """Bring the room's recent posts over; the seqno its cursor may be committed at."""
    if policy.messages > 0:
        newest_first = await client.recent(token, min(policy.messages, MAX_BACKFILL))
        oldest = now() - policy.days * DAY_S if policy.days > 0 else None
        for message in sorted(newest_first, key=lambda m: m.id):
            if message.deleted or (oldest is not None and message.posted < oldest):
                continue
            await handle(message)
    return info.message_sequence
