"""The metrics endpoint: ``GET /metrics`` on a listener of its own (docs/operations.md §5.4).

Not the appservice's port: the endpoint needs no token, so it listens where the operator
says (``metrics.listen_address``, loopback by default) and only when ``metrics.enabled`` is
true. Before each scrape it awaits the ``refresh`` hook (which reads the queues and counts
from the database, bounded by :data:`REFRESH_TIMEOUT_S`); if that fails the scrape still
answers, with the counters and the gauges as last read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge import metrics

log = logging.getLogger("bridge.metrics_server")

__all__ = ["REFRESH_TIMEOUT_S", "MetricsServer"]

REFRESH_TIMEOUT_S = 5.0

Refresh = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class MetricsServer:
    """Serves the registry of :mod:`bridge.metrics` until stopped."""

    def __init__(self, host: str, port: int, refresh: Refresh = _nothing) -> None:
        self.host = host
        self.port = port
        self._refresh = refresh
        self._lock = asyncio.Lock()  # one database read at a time, however many scrapers
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen (raises :class:`OSError` if the address cannot be bound)."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0 and runner.addresses:  # an ephemeral port: say which one it got
            self.port = int(runner.addresses[0][1])
        log.info("Serving metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening (never fails twice: a second call does nothing)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _scrape(self, request: web.Request) -> web.Response:
        async with self._lock:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT_S):
                    await self._refresh()
            except Exception as e:
                log.warning(
                    "Metrics: reading the bridge's state failed: %s", e or type(e).__name__
                )
            body = metrics.render()
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})
