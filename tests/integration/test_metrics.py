"""The metrics endpoint of a running bridge (docs/operations.md §5.4): real Synapse, the
devnet's community server, a community portal with one message each way, then the endpoint
scraped over HTTP and parsed with the client library's own parser. Off by default: then
nothing listens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import BridgeApp, ListenFailed
from bridge.config import Config
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import MatrixUsers, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    matrix_sees,
    session_sees,
    start_bridge,
)
from tests.sessionnet.extras import start_community_and_files

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(port: int) -> Samples:
    """Every sample the endpoint serves: (name, labels) -> value."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


BRIDGED = "session_bridge_messages_bridged_total"


@pytest.fixture
async def community() -> AsyncIterator[str]:
    """The URL of a room on the devnet's community server."""
    info, cleanup = await start_community_and_files()
    yield f"{info['community']}/{info['rooms'][0]}?public_key={info['community_pubkey']}"
    await cleanup()


@pytest.fixture
def metrics_port(bridge_config: Config) -> int:
    """Metrics on, on a free port."""
    port = free_port()
    bridge_config.metrics.enabled = True
    bridge_config.metrics.port = port
    return port


async def test_a_scrape_shows_messages_bridged_both_ways(
    bridge_config: Config,
    matrix_users: MatrixUsers,
    community: str,
    metrics_port: int,
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    http = aiohttp.ClientSession()
    try:
        before = await scrape(metrics_port)
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, community)
        room = community.rsplit("/", 1)[1].split("?")[0]
        sam, _ = CommunityClient.from_url(http, Identity.generate(), community)
        await sam.join(room)

        await sam.post(room, VisibleMessage(body="counted from Session"))
        await matrix_sees(alice, room_id, "^counted from Session$")
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.send_text(room_id, "counted from Matrix")
        await session_sees(sam, room, "counted from Matrix$")

        def moved(samples: Samples, direction: str) -> bool:
            labels = {"direction": direction, "kind": "community"}
            return sample(samples, BRIDGED, **labels) >= sample(before, BRIDGED, **labels) + 1

        async def both_counted() -> Samples | None:
            samples = await scrape(metrics_port)
            both = moved(samples, "session_to_matrix") and moved(samples, "matrix_to_session")
            # The one outbox row is counted once it is done: then nothing waits there.
            empty = sample(samples, "session_bridge_queue_depth", queue="outbox") == 0
            return samples if both and empty else None

        samples = await wait_for(both_counted, "both counters to move and the outbox to empty")
        for queue in ("matrix_inbox", "outbox"):
            assert ("session_bridge_queue_depth", frozenset({("queue", queue)})) in samples
            age = ("session_bridge_queue_oldest_age_seconds", frozenset({("queue", queue)}))
            assert age in samples
        assert sample(samples, "session_bridge_queue_oldest_age_seconds", queue="outbox") == 0
        assert sample(samples, "session_bridge_portals", kind="community") == 1
        assert sample(samples, "session_bridge_ready") == 1
        assert sample(samples, "session_bridge_database_up") == 1
        parked = [(d.what, d.error) for d in await app.dead_letters.list()]
        assert sample(samples, "session_bridge_dead_letters") == len(parked) == 0, parked
        server = community.split("/")[2]
        polls = sample(
            samples,
            "session_bridge_poll_duration_seconds_count",
            poller="community",
            server=server,
        )
        assert polls >= 1, f"no community polls of {server} timed"
    finally:
        await http.close()
        await app.stop()
    # Stopping the bridge releases the metrics listener.
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(metrics_port)


async def test_with_metrics_off_nothing_listens(bridge_config: Config) -> None:
    assert bridge_config.metrics.enabled is False  # the test config keeps the default
    port = free_port()
    bridge_config.metrics.port = port
    app = BridgeApp(bridge_config, homeserver_timeout=30)
    await app.start()
    try:
        with pytest.raises(aiohttp.ClientConnectionError):
            await scrape(port)
    finally:
        await app.stop()


async def test_a_metrics_port_in_use_stops_the_start_and_releases_the_rest(
    bridge_config: Config,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bridge_config.metrics.enabled = True
        bridge_config.metrics.port = taken.getsockname()[1]
        app = BridgeApp(bridge_config, homeserver_timeout=30)
        with pytest.raises(ListenFailed, match="cannot listen for metrics"):
            await app.start()
    # The appservice listener opened before it was closed again: its port is free.
    appservice = bridge_config.appservice
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((appservice.hostname, appservice.port))
