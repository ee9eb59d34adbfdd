"""The bridge's Prometheus metrics: their definitions and the registry they live in
(docs/operations.md §5.4 lists each one and what it means).

Every layer records into these with one call where the thing happens (a message sent, a
poll timed, a loop restarted); nothing here reads anything. What is read at scrape time
(queue depths, dead letters, logins, portals, readiness) is set through :func:`publish_state`
by the scrape hook the app registers (``bridge/metrics_wiring.py``), just before the registry
is rendered. The registry is the module's own, never the library's global one, so tests and
several bridges in one process do not clash.

A bottom module like :mod:`bridge.backoff`: it imports no other bridge module, so the Session
client, the database layer and the core may all use it. Label values are few by design:
directions, kinds, paths, loop names, and a community server's host (never a room or a user).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.context_managers import Timer
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = [
    "CONTENT_TYPE",
    "MATRIX_TO_SESSION",
    "PERMANENT",
    "QUEUES",
    "REGISTRY",
    "SESSION_TO_MATRIX",
    "SWARM",
    "TRANSIENT",
    "BridgeState",
    "bridged",
    "database_error",
    "failed",
    "loop_restarted",
    "observe_poll",
    "poll_failed",
    "poll_timer",
    "publish_state",
    "render",
    "server_label",
]

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# directions of a bridged message
SESSION_TO_MATRIX = "session_to_matrix"
MATRIX_TO_SESSION = "matrix_to_session"
# the failure policy's two kinds (docs/architecture.md §4.7)
TRANSIENT = "transient"
PERMANENT = "permanent"
# the durable queues whose depth and oldest item are read at scrape time
QUEUES = ("matrix_inbox", "outbox")
# the ``server`` label of storage-network polls: one series for every login's swarm, so the
# number of series does not grow with the logins or the network's nodes
SWARM = "swarm"

#: Poll latencies: from a fast local answer to a server timing out.
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

MESSAGES_BRIDGED = Counter(
    "session_bridge_messages_bridged",
    "Events bridged (messages, edits, reactions, deletions), by direction and conversation kind",
    ["direction", "kind"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "session_bridge_failures",
    "Failures by the failure policy's kind: transient = an item or room had to wait and is "
    "tried again; permanent = an item was parked in the dead-letter table",
    ["kind", "path"],
    registry=REGISTRY,
)
POLL_DURATION = Histogram(
    "session_bridge_poll_duration_seconds",
    "Time of one poll of a community server or of a login's swarm (failed polls included)",
    ["poller", "server"],
    buckets=POLL_BUCKETS,
    registry=REGISTRY,
)
POLL_FAILURES = Counter(
    "session_bridge_poll_failures",
    "Polls that failed (the server or the storage network unreachable, or handling failed)",
    ["poller", "server"],
    registry=REGISTRY,
)
LOOP_RESTARTS = Counter(
    "session_bridge_loop_restarts",
    "Restarts of a supervised background loop after it crashed",
    ["loop"],
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "session_bridge_database_errors",
    "Database errors: a query that failed because the database was unavailable, or a failed "
    "readiness probe of the database",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "session_bridge_queue_depth",
    "Items waiting in a durable queue (read from the database at scrape time)",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "session_bridge_queue_oldest_age_seconds",
    "Age of the oldest item waiting in a durable queue; 0 when it is empty",
    ["queue"],
    registry=REGISTRY,
)
DEAD_LETTERS = Gauge(
    "session_bridge_dead_letters",
    "Items parked in the dead-letter table (see the admin command deadletters)",
    registry=REGISTRY,
)
LOGINS = Gauge(
    "session_bridge_logins",
    "Session logins of Matrix users (the bot's own identity not counted)",
    registry=REGISTRY,
)
PORTALS = Gauge(
    "session_bridge_portals",
    "Bridged portals, by conversation kind",
    ["kind"],
    registry=REGISTRY,
)
READY = Gauge(
    "session_bridge_ready",
    "1 while the readiness probe (/_matrix/mau/ready) answers 200, else 0",
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "session_bridge_database_up",
    "1 while the database answers the readiness probe, else 0",
    registry=REGISTRY,
)


def server_label(url: str) -> str:
    """A community server as a label: its host and port, lower case (never a room)."""
    netloc = urlsplit(url).netloc
    return (netloc or url).lower()


def bridged(direction: str, kind: str) -> None:
    """One event bridged in ``direction`` in a portal of ``kind`` (community, direct, group)."""
    MESSAGES_BRIDGED.labels(direction, str(kind)).inc()


def failed(kind: str, path: str) -> None:
    """One failure of ``kind`` (transient or permanent) on ``path`` (a dead-letter path)."""
    FAILURES.labels(kind, str(path)).inc()


def poll_timer(poller: str, server: str) -> Timer:
    """Times one poll (a context manager); ``server`` is a URL, or :data:`SWARM`."""
    return POLL_DURATION.labels(poller, _server(server)).time()


def observe_poll(poller: str, server: str, seconds: float) -> None:
    """One poll that took ``seconds`` (where a ``with`` block of :func:`poll_timer` does not
    fit)."""
    POLL_DURATION.labels(poller, _server(server)).observe(seconds)


def poll_failed(poller: str, server: str) -> None:
    POLL_FAILURES.labels(poller, _server(server)).inc()


def loop_restarted(name: str) -> None:
    LOOP_RESTARTS.labels(name).inc()


def database_error() -> None:
    DATABASE_ERRORS.inc()


def _server(server: str) -> str:
    return server if server == SWARM else server_label(server)


@dataclass(frozen=True, slots=True)
class BridgeState:
    """What the scrape hook read: per queue (depth, age of the oldest item in seconds), the
    parked items, the users' logins, the portals per kind, and readiness."""

    queues: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    dead_letters: int = 0
    logins: int = 0
    portals: Mapping[str, int] = field(default_factory=dict)
    ready: bool = False
    database_up: bool = False


def publish_state(state: BridgeState) -> None:
    """Set the gauges read at scrape time."""
    for queue, (depth, age) in state.queues.items():
        QUEUE_DEPTH.labels(queue).set(depth)
        QUEUE_OLDEST_AGE.labels(queue).set(max(0.0, age))
    DEAD_LETTERS.set(state.dead_letters)
    LOGINS.set(state.logins)
    for kind, count in state.portals.items():
        PORTALS.labels(str(kind)).set(count)
    READY.set(1 if state.ready else 0)
    DATABASE_UP.set(1 if state.database_up else 0)


def render() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
