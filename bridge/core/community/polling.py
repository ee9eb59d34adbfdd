"""One community server's poll loop, under the failure policy (docs/architecture.md §4.7).

The bot's client reads every joined room of the server with one ``/batch`` per poll
(docs/session-protocol.md §5.9). Each room's items are handed, in order and under the
portal's lock, to the inbound handler:

* an item that fails *transiently* (the homeserver or the database away) stops that room's
  batch: its cursor is committed only up to the item before, and the room is read again
  after a backoff; other rooms of the server go on;
* an item that fails *permanently* is tried a few times, then parked in the dead-letter
  table; the room goes on with the next item and its cursor moves past it.

Rooms whose server could not be reached when they were resumed (at startup) are kept
*pending* and joined by this loop as soon as the server answers, with a backoff meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge import metrics
from bridge.backoff import Backoff
from bridge.core.community.backfill import BackfillPolicy, backfill_room
from bridge.core.portal.failures import Transient, attempt_or_park, is_transient
from bridge.db.records import PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.session.errors import SessionError
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.cursors import room_stream
from bridge.session.sogs.models import (
    CommunityMessage,
    PollResult,
    ReactionUpdate,
    RoomInfo,
    RoomUpdate,
)
from bridge.supervisor import Loop

log = logging.getLogger("bridge.core.community.polling")

Item = CommunityMessage | ReactionUpdate
ItemHandler = Callable[[PortalRecord, Item], Awaitable[None]]
# (portal, the bot's client, room token, room info): the room's name/description/image changed
RoomInfoHandler = Callable[[PortalRecord, CommunityClient, str, RoomInfo], Awaitable[None]]
# (portal, item, error, tries): keep an item that failed for good
ParkItem = Callable[[PortalRecord, Item, BaseException, int], Awaitable[None]]
# (the bot's client, its poll, the server's portal ids): the boxes of the poll and of the
# logins handled and committed (bridge.core.community.boxes); True if a box has more waiting
BoxesHandler = Callable[[CommunityClient, PollResult, list[int]], Awaitable[bool]]


async def _no_boxes(client: CommunityClient, result: PollResult, portal_ids: list[int]) -> bool:
    await client.commit_boxes(result.inbox_id, result.outbox_id)
    return False


ERROR_BACKOFF_MAX_S = 60.0


@dataclass
class ServerLink:
    """The bot's client for one server, the portals it reads there, and its poll loop."""

    client: CommunityClient
    portals: dict[str, int] = field(default_factory=dict)  # joined: room token -> portal id
    pending: dict[str, int] = field(default_factory=dict)  # to join once the server answers
    loop: Loop | None = None
    join_failures: int = 0
    next_join: float = 0.0  # time.monotonic() of the next try of the pending joins
    # joined rooms whose cursor may never have been committed: backfilled before the poll
    fresh: dict[str, RoomInfo] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.task is not None and not self.loop.task.done()


def describe(item: Item) -> str:
    if isinstance(item, ReactionUpdate):
        return f"reactions of community post {item.id} in {item.room}"
    return f"community post {item.id} (seqno {item.seqno}) in {item.room}"


@dataclass
class ServerPolling:
    """Polls the servers' links; one :meth:`run` per server (supervised by the caller)."""

    portals: PortalRepo
    handle_item: ItemHandler
    portal_lock: Callable[[int], asyncio.Lock]
    poll_interval: float
    on_room_info: RoomInfoHandler
    allow_downloads: Callable[[str], None]
    park: ParkItem
    on_boxes: BoxesHandler = _no_boxes
    backfill: BackfillPolicy = field(default_factory=BackfillPolicy)

    def __post_init__(self) -> None:
        # after the n-th failed poll in a row: 2^n poll intervals, at most ERROR_BACKOFF_MAX_S
        self.error_backoff = Backoff(2 * self.poll_interval, ERROR_BACKOFF_MAX_S)

    async def join(self, link: ServerLink, token: str, portal_id: int) -> None:
        """Join ``token`` on the link's server and start reading it (raises SessionError)."""
        info = await link.client.join(token)
        await self._joined(link, token, portal_id, info, await self.portals.get_by_id(portal_id))

    async def _joined(
        self,
        link: ServerLink,
        token: str,
        portal_id: int,
        info: RoomInfo,
        portal: PortalRecord | None,
    ) -> None:
        """A room the client joined is read from now on; its portal gets the room's info."""
        link.pending.pop(token, None)
        link.portals[token] = portal_id
        if not self.backfill.replays_all:
            link.fresh[token] = info
        self.allow_downloads(link.client.server.base_url)
        if portal is not None:
            async with self.portal_lock(portal_id):
                await self.on_room_info(portal, link.client, token, info)

    async def run(self, link: ServerLink) -> None:
        """Poll until the link has no room left; survives every failure of a poll."""
        failures = 0
        while link.portals or link.pending:
            if link.pending and time.monotonic() >= link.next_join:
                await self._join_pending(link)
            if not link.portals:
                await asyncio.sleep(max(0.0, link.next_join - time.monotonic()))
                continue
            try:
                await self._backfill_fresh(link)
                more, held = await self._poll_once(link)
            except Exception as e:  # nothing of a failed poll was committed: it comes again
                failures += 1
                delay = self.error_backoff.delay(failures)
                where = link.client.server.base_url
                metrics.poll_failed("community", where)
                if isinstance(e, SessionError) or is_transient(e):  # e.g. the database away
                    log.warning("Polling %s failed (%s); retrying in %.0f s", where, e, delay)
                else:
                    log.exception("Handling a poll of %s failed; retrying in %.0f s", where, delay)
                await asyncio.sleep(delay)
                continue
            failures = failures + 1 if held else 0
            if held:
                await asyncio.sleep(self.error_backoff.delay(failures))
            elif not more:
                await asyncio.sleep(self.poll_interval)

    async def _join_pending(self, link: ServerLink) -> None:
        """Try every room still to join; the ones that fail are tried again after a backoff
        (one room the server refuses must not keep the others out)."""
        pending = dict(link.pending)
        try:  # one /batch for every room, not a request per room (docs/architecture.md §3.4)
            outcomes: dict[str, RoomInfo | Exception] = {
                **await link.client.join_many(list(pending))
            }
            portals = await self.portals.get_many(list(pending.values()))
        except Exception as e:  # the server (or the database) cannot be asked: all wait
            outcomes, portals = dict.fromkeys(pending, e), {}
        failed: list[tuple[str, Exception]] = []
        for token, outcome in outcomes.items():
            portal_id = pending[token]
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                await self._joined(link, token, portal_id, outcome, portals.get(portal_id))
            except Exception as e:
                failed.append((token, e))
        if len(failed) < len(outcomes):
            where = link.client.server.base_url
            log.info("Resumed community rooms of %s: %d", where, len(outcomes) - len(failed))
        if not failed:
            link.join_failures = 0
            return
        link.join_failures += 1
        delay = self.error_backoff.delay(link.join_failures)
        link.next_join = time.monotonic() + delay
        if link.join_failures & (link.join_failures - 1) == 0:  # 1st, 2nd, 4th... in a row
            for token, error in failed:
                log.warning(
                    "Cannot resume community room %s of %s yet (%s); trying again in %.0f s",
                    token,
                    link.client.server.base_url,
                    error,
                    delay,
                )

    async def _poll_once(self, link: ServerLink) -> tuple[bool, bool]:
        """One poll of every room of the server: (a room had items, or has more waiting; a
        room is held back by a transient failure)."""
        with metrics.poll_timer("community", link.client.server.base_url):
            result = await link.client.poll()
        # Rooms are independent conversations: handled at once, each in its own order under
        # its portal's lock (docs/architecture.md §4.3), so one room's sends never wait
        # behind another's.
        outcomes = await asyncio.gather(
            *(self._room_update(link, token, update) for token, update in result.rooms.items()),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise errors[0]  # the failed rooms' cursors did not move: they come again
        flags = [o for o in outcomes if not isinstance(o, BaseException)]
        boxes_more = await self.on_boxes(link.client, result, list(link.portals.values()))
        return boxes_more or any(more for more, _ in flags), any(held for _, held in flags)

    async def _backfill_fresh(self, link: ServerLink) -> None:
        """Backfill each newly joined room whose cursor was never committed (README,
        Backfill); a transient failure leaves it for the next poll, the others go on."""
        for token, info in list(link.fresh.items()):
            portal_id = link.portals.get(token)
            base = link.client.server.base_url
            if portal_id is None or await link.client.cursors.get(base, room_stream(token)):
                link.fresh.pop(token, None)
                continue
            portal = await self.portals.get_by_id(portal_id)
            if portal is None or portal.unbridged_at is not None:
                link.fresh.pop(token, None)
                continue

            async def handle(message: CommunityMessage, portal: PortalRecord = portal) -> None:
                async with self.portal_lock(portal.id):
                    await self._item(portal, message)

            try:
                seqno = await backfill_room(link.client, token, info, self.backfill, handle)
            except (Transient, SessionError) as e:
                log.warning("Backfilling community room %s must wait: %s", token, e)
                continue
            await link.client.commit_room(token, seqno)
            link.fresh.pop(token, None)
            log.info("Backfilled community room %s of %s", token, base)

    async def _room_update(
        self, link: ServerLink, token: str, update: RoomUpdate
    ) -> tuple[bool, bool]:
        """One room of a poll: (it had items, so read it again at once; it is held back by a
        transient failure)."""
        portal_id = link.portals.get(token)
        if portal_id is None:
            return False, False
        if update.error is not None:
            log.warning("Community room %s: %s", token, update.error)
            return False, False
        for bad in update.bad_items:
            log.warning("Dropping a malformed item in %s (%s): %s", token, bad.where, bad.error)
        if not update.items and (update.info is None or update.info.details is None):
            await link.client.commit_room(token, update.seqno)  # past undecodable items only
            return False, False
        portal = await self.portals.get_by_id(portal_id)
        if portal is None or portal.unbridged_at is not None:
            return False, False
        done_to = await self._room(link, portal, token, update)
        if done_to is None:
            await link.client.commit_room(token, update.seqno)
            # While a room has traffic, read it again at once: more may have come meanwhile.
            return True, False
        if done_to >= 0:
            await link.client.commit_room(token, done_to)
        return False, True

    async def _room(
        self, link: ServerLink, portal: PortalRecord, token: str, update: RoomUpdate
    ) -> int | None:
        """Handle one room's items; None when all were handled (or parked), else the seqno
        the room's cursor may move to: just before the first item not handled because of a
        transient failure."""
        # The portal lock is taken per item, not per batch: the portal's Matrix messages wait
        # for one Session item, never for a whole backlog (docs/architecture.md §4.3).
        index = 0
        try:
            if update.info is not None and update.info.details is not None:
                async with self.portal_lock(portal.id):
                    await self._room_info(link, portal, token, update.info.details)
            while index < len(update.items):
                async with self.portal_lock(portal.id):
                    await self._item(portal, update.items[index])
                index += 1
        except Transient as e:
            log.warning("Community room %s must wait: %s", token, e)
            metrics.failed(metrics.TRANSIENT, "community")
            return min(item.seqno for item in update.items[index:]) - 1 if update.items else -1
        return None

    async def _room_info(
        self, link: ServerLink, portal: PortalRecord, token: str, info: RoomInfo
    ) -> None:
        """Apply a room's changed name/description/image; only a transient failure holds
        the room (a room's picture that cannot be applied must not stop its messages)."""
        try:
            await self.on_room_info(portal, link.client, token, info)
        except Exception as e:
            if is_transient(e):
                raise Transient(e) from e
            log.exception("Applying the room info of %s failed; going on without it", token)

    async def _item(self, portal: PortalRecord, item: Item) -> None:
        async def handle() -> None:
            await self.handle_item(portal, item)

        async def park(error: BaseException, tries: int) -> None:
            await self.park(portal, item, error, tries)

        await attempt_or_park(handle, describe(item), park)
