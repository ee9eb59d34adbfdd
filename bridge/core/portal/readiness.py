"""Readiness of the bridge (``/_matrix/mau/ready``): started, every supervised loop running,
and the database answering (docs/architecture.md §4.7).

The supervisor reports loops that crashed and wait for their restart; a loop here probes the
database every :data:`PROBE_INTERVAL_S` seconds (bounded by :data:`PROBE_TIMEOUT_S`), so an
outage turns readiness off even while nothing else touches the database, and on again once it
answers. Every change is logged once and published (to the appservice's ``ready`` flag).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge import metrics
from bridge.backoff import Backoff
from bridge.core.portal.health import reason
from bridge.db.engine import Database
from bridge.supervisor import DEFAULT_BACKOFF, Supervisor

log = logging.getLogger("bridge.core.portal.readiness")

PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 5.0


class Readiness:
    """Owns the :class:`Supervisor` of the bridge's loops and decides readiness."""

    def __init__(
        self,
        *,
        db: Database,
        publish: Callable[[bool], None],
        probe_interval: float = PROBE_INTERVAL_S,
        probe_timeout: float = PROBE_TIMEOUT_S,
        restart_backoff: Backoff = DEFAULT_BACKOFF,
        stable_after: float = 5.0,
    ) -> None:
        self._db = db
        self._publish = publish
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self.supervisor = Supervisor(
            backoff=restart_backoff, stable_after=stable_after, on_change=self.update
        )
        self._started = False
        self.database_up = True
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def set_started(self, started: bool) -> None:
        """Start-up is complete (True), or stopping begins (False)."""
        self._started = started
        self.update()

    def update(self) -> None:
        ready = self._started and self.database_up and self.supervisor.healthy
        if ready == self._ready:
            return
        self._ready = ready
        if ready:
            log.info("Ready")
        elif self._started:
            down = self.supervisor.down()
            why = "the database cannot be reached" if not self.database_up else ""
            if down:
                why = f"{why}; " if why else ""
                why += f"down: {', '.join(down)}"
            log.warning("Not ready: %s", why)
        self._publish(ready)

    async def watch_database(self) -> None:
        """Probe the database until cancelled; readiness follows its answers."""
        while True:
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await self._db.ping()
            except Exception as e:
                metrics.database_error()
                if self.database_up:
                    log.warning("The database cannot be reached: %s", reason(e))
                self.database_up = False
            else:
                if not self.database_up:
                    log.info("The database answers again")
                self.database_up = True
            self.update()
            await asyncio.sleep(self._probe_interval)
