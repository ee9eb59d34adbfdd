"""The hourly count of every community and group portal (docs/migration.md §3): the state
event and (with ``migration.topic_counts``) the topic follow the counts when they change, and
the day's sample for the weekly trend is kept, without anyone asking ``who``."""

from __future__ import annotations

import asyncio
import logging

from bridge.core.moved import TOPIC_KINDS, MigrationStatus
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.core.counts_refresh")

#: Seconds between two counts of every portal.
INTERVAL_S = 3600.0


class CountsRefresher:
    """:meth:`tick` counts each portal once; :meth:`run` ticks forever (supervised)."""

    def __init__(self, status: MigrationStatus, portals: PortalRepo) -> None:
        self._status = status
        self._portals = portals

    async def tick(self) -> int:
        """Count every active community and group portal; how many were counted."""
        counted = 0
        for portal in await self._portals.list_active():
            if portal.kind not in TOPIC_KINDS or portal.mxid is None:
                continue
            try:
                await self._status.refresh(portal)
            except Exception as e:  # one unreadable room must not stop the others
                log.info("Portal %d not counted: %s", portal.id, e)
                continue
            counted += 1
        return counted

    async def run(self, interval: float = INTERVAL_S, first_delay: float = 60.0) -> None:
        await asyncio.sleep(first_delay)  # not in the rush of starting
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("Counting the portals failed; trying again later")
            await asyncio.sleep(interval)
