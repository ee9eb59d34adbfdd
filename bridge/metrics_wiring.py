"""How the app feeds the metrics (docs/operations.md §5.4): the scrape hook that reads the
queues and counts from the database and readiness from the app, the listener built from the
``metrics`` config section, and the count of outbox rows delivered to Session.

Part of the composition root (only :mod:`bridge.app` imports it), so it may see the database
layer, which :mod:`bridge.metrics` and :mod:`bridge.metrics_server` never do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from bridge import metrics
from bridge.config import MetricsConfig
from bridge.db.records import BridgeStats, OutboxRecord, now_ms
from bridge.metrics_server import MetricsServer, Refresh

__all__ = ["StatsReader", "count_delivered", "metrics_server", "scrape_hook", "state_of"]


class StatsReader(Protocol):
    """What the scrape hook reads (:class:`bridge.db.repos.stats.StatsRepo`)."""

    async def read(self) -> BridgeStats: ...


def state_of(
    stats: BridgeStats, now: int, *, ready: bool, database_up: bool
) -> metrics.BridgeState:
    """The gauges' values from what the database said, at ``now`` (ms)."""

    def age(oldest: int | None) -> float:
        return 0.0 if oldest is None else max(0, now - oldest) / 1000

    return metrics.BridgeState(
        queues={
            "matrix_inbox": (stats.inbox_depth, age(stats.inbox_oldest_at)),
            "outbox": (stats.outbox_depth, age(stats.outbox_oldest_at)),
        },
        dead_letters=stats.dead_letters,
        logins=stats.logins,
        portals={kind.value: n for kind, n in stats.portals.items()},
        ready=ready,
        database_up=database_up,
    )


def scrape_hook(
    repo: StatsReader,
    ready: Callable[[], bool],
    database_up: Callable[[], bool],
    clock: Callable[[], int] = now_ms,
) -> Refresh:
    """What the endpoint awaits before each scrape: read the database, set the gauges. If
    the database does not answer, readiness is still published before the error goes up."""

    async def refresh() -> None:
        try:
            stats = await repo.read()
        except BaseException:
            metrics.READY.set(1 if ready() else 0)
            metrics.DATABASE_UP.set(1 if database_up() else 0)
            raise
        up = database_up()
        metrics.publish_state(state_of(stats, clock(), ready=ready(), database_up=up))

    return refresh


def metrics_server(config: MetricsConfig, refresh: Refresh) -> MetricsServer | None:
    """The endpoint's listener when metrics are enabled (not started yet), else None."""
    if not config.enabled:
        return None
    return MetricsServer(config.listen_address, config.port, refresh)


def count_delivered(row_kinds: Mapping[str, str]) -> Callable[[OutboxRecord], Awaitable[None]]:
    """The outbox's ``on_delivered`` hook: one Matrix → Session event bridged, counted under
    the conversation kind whose deliverer handles the row's kind."""

    async def delivered(row: OutboxRecord) -> None:
        metrics.bridged(metrics.MATRIX_TO_SESSION, row_kinds.get(row.kind, "unknown"))

    return delivered
