"""The startup self-test against the real Synapse: each failure is told apart. And the bridge
as its own process, as operators run it: stopping on SIGTERM, and restarting after a config
edit without restarting the homeserver."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from mautrix.client import Client
from mautrix.types import RoomID

from bridge.app import BridgeApp, ListenFailed
from bridge.config import Config, load_config
from bridge.config_file import update_values
from bridge.matrix.startup import BotAuthFailed, HomeserverUnreachable, PingFailed
from tests.integration.conftest import (
    MatrixUsers,
    devnet_settings,
    messages_from,
    require_env,
    wait_for,
)
from tests.integration.helpers import BridgeProcess, open_management_room, write_process_config
from tests.sessionnet.dm_setup import DmWorld, dm_world

BOT = "@sessionbot:localhost"
PONG = "Pong! The bridge is running."


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


async def process_bridge(tmp_path: Path, admin: str, world: DmWorld) -> BridgeProcess:
    """``python -m bridge`` with its own config and database, on the devnet of ``world``."""
    session = {("session", key): value for key, value in devnet_settings(world).items()}
    config, address = await write_process_config(tmp_path, admin, session)
    return BridgeProcess(config, address, tmp_path / "bridge.log")


async def pongs(user: Client, room_id: RoomID, count: int, timeout: float = 30) -> None:
    async def answered() -> bool:
        return (await messages_from(user, str(room_id), BOT)).count(PONG) >= count

    await wait_for(answered, f"answer {count} to ping", timeout)


async def test_sigterm_is_one_log_line_and_a_clean_stop(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    async with dm_world() as world:
        bridge = await process_bridge(tmp_path, str(alice.mxid), world)
        await bridge.start()
        try:
            # Serve some requests: the homeserver pushes the invite and the messages.
            room_id = await open_management_room(alice, BOT)
            await alice.send_text(room_id, "ping")
            await pongs(alice, room_id, 1)
        finally:
            code = await bridge.stop()  # SIGTERM
    assert code == 0
    lines = bridge.log.read_text().splitlines()
    stopping = [
        i for i, line in enumerate(lines) if line.endswith("INFO bridge: Stopping on SIGTERM")
    ]
    assert len(stopping) == 1, lines[-20:]
    assert lines[stopping[0] + 1 :] == []  # nothing after it: no traceback, no noise
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line]
    # The log is at INFO (the test config's level): aiohttp's access lines are DEBUG now.
    assert load_config(bridge.config).logging.level == "INFO"
    assert not [line for line in lines if "aiohttp.access" in line or "/_matrix/app/v1/" in line]


async def test_config_edit_and_g_keep_the_bridge_working_with_the_same_homeserver(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    # What the operator did: the bridge runs; they edit a setting the registration does not
    # depend on, and run scripts/run.sh, which runs -g and restarts the bridge. -g used to
    # rotate both tokens, so the bridge exited 7 until Synapse was restarted, and a message
    # sent meanwhile never arrived. Synapse is not restarted here.
    synapse_registration = Path(require_env("SMB_TEST_CONFIG")).parent / "registration.yaml"
    registration = tmp_path / "registration.yaml"
    shutil.copy(synapse_registration, registration)
    loaded_by_synapse = registration.read_bytes()
    alice = await matrix_users.new("alice")
    async with dm_world() as world:
        bridge = await process_bridge(tmp_path, str(alice.mxid), world)
        await bridge.start()
        try:
            room_id = await open_management_room(alice, BOT)
            await alice.send_text(room_id, "ping")
            await pongs(alice, room_id, 1)
            assert await bridge.stop() == 0
            await alice.send_text(room_id, "ping")  # while the bridge is down

            update_values(bridge.config, {("session", "community_poll_interval"): 0.5})
            generate = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "-c", str(bridge.config),
                "-g", "-r", str(registration),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output = (await generate.communicate())[0].decode()
            assert generate.returncode == 0, output

            await bridge.start()  # fails if Synapse does not know the tokens (exit 7)
            await pongs(alice, room_id, 2, timeout=60)  # the ping sent while it was down
            await alice.send_text(room_id, "ping")
            await pongs(alice, room_id, 3)
        finally:
            await bridge.stop()
    # run.sh compares the file before and after -g: unchanged, so it says nothing of a restart.
    assert registration.read_bytes() == loaded_by_synapse
    assert "need not be restarted" in output
    assert load_config(bridge.config).session.community_poll_interval == 0.5
