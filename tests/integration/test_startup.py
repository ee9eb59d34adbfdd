"""The startup self-test against the real Synapse: each failure is told apart."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from bridge.app import BridgeApp, ListenFailed
from bridge.config import Config, load_config
from bridge.matrix.startup import BotAuthFailed, HomeserverUnreachable, PingFailed
from tests.integration.conftest import require_env


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Config:
    config = load_config(Path(require_env("SMB_TEST_CONFIG")))
    config.database.url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_expecting(config: Config, error: type[Exception], timeout: float = 30) -> str:
    app = BridgeApp(config, homeserver_timeout=timeout)
    try:
        with pytest.raises(error) as caught:
            await app.start()
    finally:
        await app.stop()
    return str(caught.value)


async def test_ready_probe_turns_green_after_the_self_test(sqlite_config: Config) -> None:
    app = BridgeApp(sqlite_config)
    await app.start()
    try:
        url = f"{sqlite_config.appservice.address}/_matrix/mau/ready"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
    finally:
        await app.stop()


async def test_wrong_as_token_is_reported(sqlite_config: Config) -> None:
    sqlite_config.appservice.as_token = "not-the-registered-token"
    message = await start_expecting(sqlite_config, BotAuthFailed)
    assert "app_service_config_files" in message


async def test_unreachable_homeserver_is_reported(sqlite_config: Config) -> None:
    sqlite_config.homeserver.address = f"http://127.0.0.1:{free_port()}"
    message = await start_expecting(sqlite_config, HomeserverUnreachable, timeout=1.5)
    assert "homeserver.address" in message


async def test_homeserver_that_cannot_reach_us_is_reported(sqlite_config: Config) -> None:
    # Listen somewhere else than the registration's url: Synapse's ping cannot connect.
    sqlite_config.appservice.port = free_port()
    message = await start_expecting(sqlite_config, PingFailed)
    assert "cannot reach the bridge" in message


async def test_port_in_use_is_reported(sqlite_config: Config) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        sqlite_config.appservice.port = blocker.getsockname()[1]
        message = await start_expecting(sqlite_config, ListenFailed)
    assert "cannot listen" in message
