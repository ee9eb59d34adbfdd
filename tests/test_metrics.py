"""The metrics (docs/operations.md §5.4): their definitions and labels, the endpoint on its own
listener, the scrape hook's gauges, and what the layers record (restarts, database errors,
delivered rows). The counters are the process's own, so tests compare before and after."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import exc

from bridge import metrics
from bridge.backoff import Backoff
from bridge.config import Config, MetricsConfig, load_config
from bridge.db.errors import is_unavailable
from bridge.db.records import BridgeStats, OutboxRecord, OutboxStatus, PortalKind
from bridge.metrics_server import MetricsServer
from bridge.metrics_wiring import count_delivered, metrics_server, scrape_hook, state_of
from bridge.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000_000


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def families() -> dict[str, str]:
    """Every metric in the registry: its name as scraped -> its type."""
    found = {}
    for family in metrics.REGISTRY.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = family.type
    return found


def test_every_metric_is_prefixed_and_documented() -> None:
    docs = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    names = families()
    assert len(names) >= 13
    for name in names:
        assert name.startswith("session_bridge_"), name
        assert f"`{name}`" in docs, f"docs/operations.md does not describe {name}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Operations" in readme
    for mentioned in re.findall(r"`(session_bridge_[a-z_]+)", readme):
        assert mentioned in names, f"README names {mentioned}, which does not exist"


def test_the_registry_is_not_the_global_one() -> None:
    from prometheus_client import REGISTRY as GLOBAL

    assert metrics.REGISTRY is not GLOBAL
    assert GLOBAL.get_sample_value("session_bridge_dead_letters") is None


def test_server_labels_are_hosts_never_rooms() -> None:
    assert metrics.server_label("https://Open.GetSession.org") == "open.getsession.org"
    assert metrics.server_label("http://127.0.0.1:8080/lobby?public_key=ab") == "127.0.0.1:8080"


def test_recording_moves_the_counters() -> None:
    sent = ("session_bridge_messages_bridged_total", {"direction": "session_to_matrix"})
    before = value(sent[0], **sent[1], kind="community")
    metrics.bridged(metrics.SESSION_TO_MATRIX, PortalKind.COMMUNITY.value)
    assert value(sent[0], **sent[1], kind="community") == before + 1

    failures = value("session_bridge_failures_total", kind="permanent", path="outbox")
    metrics.failed(metrics.PERMANENT, "outbox")
    assert value("session_bridge_failures_total", kind="permanent", path="outbox") == failures + 1

    polls = {"poller": "community", "server": "sogs.test:81"}
    count = value("session_bridge_poll_duration_seconds_count", **polls)
    with metrics.poll_timer("community", "http://sogs.test:81"):
        pass
    metrics.observe_poll("swarm", metrics.SWARM, 0.3)
    assert value("session_bridge_poll_duration_seconds_count", **polls) == count + 1
    assert (
        value(
            "session_bridge_poll_duration_seconds_bucket", poller="swarm", server="swarm", le="0.5"
        )
        >= 1
    )
    failed_polls = value("session_bridge_poll_failures_total", **polls)
    metrics.poll_failed("community", "http://sogs.test:81/")
    assert value("session_bridge_poll_failures_total", **polls) == failed_polls + 1


def test_publishing_the_state_sets_the_gauges() -> None:
    metrics.publish_state(
        metrics.BridgeState(
            queues={"matrix_inbox": (3, 1.5), "outbox": (0, 0.0)},
            dead_letters=2,
            logins=5,
            portals={"community": 4, "direct": 1, "group": 0},
            ready=True,
            database_up=True,
        )
    )
    assert value("session_bridge_queue_depth", queue="matrix_inbox") == 3
    assert value("session_bridge_queue_oldest_age_seconds", queue="matrix_inbox") == 1.5
    assert value("session_bridge_dead_letters") == 2
    assert value("session_bridge_logins") == 5
    assert value("session_bridge_portals", kind="community") == 4
    assert value("session_bridge_ready") == 1 and value("session_bridge_database_up") == 1


def test_the_text_format_parses() -> None:
    metrics.bridged(metrics.MATRIX_TO_SESSION, "direct")
    parsed = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert parsed["session_bridge_messages_bridged"].type == "counter"
    assert parsed["session_bridge_poll_duration_seconds"].type == "histogram"
    samples = parsed["session_bridge_messages_bridged"].samples
    assert any(s.labels == {"direction": "matrix_to_session", "kind": "direct"} for s in samples)


def test_state_from_the_database_counts() -> None:
    stats = BridgeStats(
        inbox_depth=2,
        inbox_oldest_at=T0 - 90_000,
        outbox_depth=0,
        outbox_oldest_at=None,
        dead_letters=1,
        logins=3,
        portals={PortalKind.COMMUNITY: 2, PortalKind.DIRECT: 1, PortalKind.GROUP: 0},
    )
    state = state_of(stats, T0, ready=False, database_up=True)
    assert state.queues == {"matrix_inbox": (2, 90.0), "outbox": (0, 0.0)}
    assert state.portals == {"community": 2, "direct": 1, "group": 0}
    assert (state.dead_letters, state.logins, state.ready, state.database_up) == (
        1,
        3,
        False,
        True,
    )


class FakeStats:
    def __init__(self, stats: BridgeStats | None) -> None:
        self.stats, self.reads = stats, 0

    async def read(self) -> BridgeStats:
        self.reads += 1
        if self.stats is None:
            raise ConnectionRefusedError("the database is down")
        return self.stats


async def scrape(port: int) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_the_endpoint_reads_the_state_before_each_scrape() -> None:
    stats = BridgeStats(4, T0, 1, T0, 0, 0, {kind: 0 for kind in PortalKind})
    repo = FakeStats(stats)
    health = {"ready": True, "database": True}
    hook = scrape_hook(
        repo, lambda: health["ready"], lambda: health["database"], clock=lambda: T0 + 2_000
    )
    server = MetricsServer("127.0.0.1", 0, hook)
    await server.start()
    try:
        assert server.port != 0
        status, content_type, body = await scrape(server.port)
        assert status == 200 and content_type.startswith("text/plain")
        parsed = {f.name: f for f in text_string_to_metric_families(body)}
        depth = {s.labels["queue"]: s.value for s in parsed["session_bridge_queue_depth"].samples}
        assert depth == {"matrix_inbox": 4, "outbox": 1}
        ages = parsed["session_bridge_queue_oldest_age_seconds"].samples
        assert {s.labels["queue"]: s.value for s in ages} == {"matrix_inbox": 2.0, "outbox": 2.0}
        assert repo.reads == 1

        # The database is down: the scrape still answers, readiness says so.
        repo.stats = None
        health.update(ready=False, database=False)
        status, _, body = await scrape(server.port)
        assert status == 200 and repo.reads == 2
        assert "session_bridge_ready 0.0" in body and "session_bridge_database_up 0.0" in body
    finally:
        await server.stop()
    await server.stop()  # a second stop does nothing
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(server.port)


async def test_a_slow_database_does_not_hold_the_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.metrics_server.REFRESH_TIMEOUT_S", 0.1)
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    server = MetricsServer("127.0.0.1", 0, stuck)
    await server.start()
    try:
        async with asyncio.timeout(10):
            status, _, body = await scrape(server.port)
        assert status == 200 and "session_bridge_messages_bridged" in body
    finally:
        await server.stop()


async def test_a_port_in_use_is_an_error() -> None:
    first = MetricsServer("127.0.0.1", 0)
    await first.start()
    try:
        with pytest.raises(OSError):
            await MetricsServer("127.0.0.1", first.port).start()
    finally:
        await first.stop()


def test_metrics_are_off_by_default() -> None:
    assert Config().metrics == MetricsConfig(enabled=False, listen_address="127.0.0.1", port=9464)
    example = load_config(ROOT / "config.example.yaml", environ={})
    assert example.metrics.enabled is False
    assert metrics_server(Config().metrics, scrape_hook(FakeStats(None), bool, bool)) is None
    on = MetricsConfig(enabled=True, listen_address="0.0.0.0", port=9999)
    server = metrics_server(on, scrape_hook(FakeStats(None), bool, bool))
    assert server is not None and (server.host, server.port) == ("0.0.0.0", 9999)


def test_metrics_can_be_turned_on_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text((ROOT / "config.example.yaml").read_text())
    config = load_config(path, environ={"BRIDGE_METRICS_ENABLED": "true"})
    assert config.metrics.enabled is True


async def test_delivered_rows_count_under_their_kind() -> None:
    hook = count_delivered({"sogs_post": "community", "dm_send": "direct"})
    labels = {"direction": "matrix_to_session", "kind": "community"}
    before = value("session_bridge_messages_bridged_total", **labels)
    row = OutboxRecord(
        id=1,
        portal_id=1,
        login_id=None,
        kind="sogs_post",
        payload="{}",
        status=OutboxStatus.SENDING,
        attempts=1,
        next_attempt_at=0,
        last_error=None,
        matrix_event_id=None,
        created_at=0,
        updated_at=0,
    )
    await hook(row)
    assert value("session_bridge_messages_bridged_total", **labels) == before + 1


async def test_loop_restarts_count_by_name() -> None:
    supervisor = Supervisor(backoff=Backoff(0.01), stable_after=10)
    before = value("session_bridge_loop_restarts_total", loop="flaky")
    runs = {"n": 0}
    forever = asyncio.Event()

    async def flaky() -> None:
        runs["n"] += 1
        if runs["n"] <= 2:
            raise RuntimeError("crash")
        await forever.wait()

    supervisor.spawn("flaky", flaky)
    try:
        async with asyncio.timeout(5):
            while runs["n"] < 3:
                await asyncio.sleep(0.005)
    finally:
        await supervisor.stop()
    assert value("session_bridge_loop_restarts_total", loop="flaky") == before + 2


def test_database_unavailability_is_counted() -> None:
    before = value("session_bridge_database_errors_total")
    assert is_unavailable(exc.OperationalError("SELECT 1", {}, Exception("locked")))
    assert not is_unavailable(exc.IntegrityError("INSERT", {}, Exception("duplicate")))
    assert value("session_bridge_database_errors_total") == before + 1
