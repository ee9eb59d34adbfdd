"""Fixtures for tests against the real Synapse and PostgreSQL that scripts/test.sh starts.

Nothing here is skipped: without the servers these tests fail and say how to run them. Every
test here is marked ``integration`` (``pytest -m "not integration"`` runs the rest without the
servers), and the PostgreSQL databases a test creates are dropped after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
from mautrix.client import Client
from mautrix.types import PaginationDirection, RoomID

from bridge.app import BridgeApp
from bridge.config import Config, load_config
from bridge.core.direct.chats import direct_key
from bridge.db.records import PortalKind
from bridge.session.client import SessionClient
from bridge.session.keys import Identity
from bridge.session.sogs.client import CommunityClient
from tests.sessionnet.dm_setup import DmWorld, Inbox, dm_world
from tests.sessionnet.extras import CommunityAndFiles
from tests.sessionnet.net import Devnet

T = TypeVar("T")
WAIT_TIMEOUT = 30.0


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the tests with `bash scripts/test.sh`, which starts "
            "PostgreSQL and Synapse and sets it"
        )
    return value


async def wait_for(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT_TIMEOUT
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``integration`` (before ``-m`` deselects)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)


# The PostgreSQL databases the running test created: (server URL, name).
_created_databases: list[tuple[str, str]] = []


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_postgres_database(server_url: str) -> str:
    """A new empty database on the test server; it is dropped after the test."""
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    _created_databases.append((server_url, name))
    return server_url.rsplit("/", 1)[0] + "/" + name


async def _drop_databases(databases: list[tuple[str, str]]) -> None:
    for server_url, name in databases:
        # FORCE: a bridge process the test killed may still hold connections.
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _drop_created_databases() -> Iterator[None]:
    # Autouse: set up first, so torn down after the fixtures that use the databases. The
    # drop runs on its own event loop, in a thread, whatever loop the test used.
    yield
    created = list(_created_databases)
    _created_databases.clear()
    if created:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _drop_databases(created)).result()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    return await create_postgres_database(require_env("SMB_TEST_POSTGRES_URL"))


@pytest.fixture
def bridge_config(database_url: str) -> Config:
    config = load_config(Path(require_env("SMB_TEST_CONFIG")))
    config.database.url = database_url
    return config


@pytest.fixture
async def running_bridge(bridge_config: Config) -> AsyncIterator[BridgeApp]:
    app = BridgeApp(bridge_config, homeserver_timeout=30)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


class MatrixUsers:
    """Registers fresh users on the test Synapse and hands out logged-in clients."""

    def __init__(self, base_url: str, shared_secret: str) -> None:
        self.base_url = base_url
        self.shared_secret = shared_secret
        self.clients: list[Client] = []

    async def new(self, name: str) -> Client:
        username = f"{name}-{uuid.uuid4().hex[:8]}"
        url = f"{self.base_url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                nonce = (await resp.json())["nonce"]
            password = uuid.uuid4().hex
            mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(f"{nonce}\0{username}\0{password}\0notadmin".encode())
            body = {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": False,
                "mac": mac.hexdigest(),
            }
            async with http.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                data = await resp.json()
        client = Client(mxid=data["user_id"], base_url=self.base_url, token=data["access_token"])
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.api.session.close()


@pytest.fixture
async def servers() -> AsyncIterator[CommunityAndFiles]:
    """The devnet's community server and file server."""
    extras = CommunityAndFiles()
    await extras.start()
    yield extras
    await extras.stop()


@dataclass
class CommunityDevnet:
    """The devnet's community server with a client session, for Session-side members."""

    servers: CommunityAndFiles
    http: aiohttp.ClientSession

    @property
    def room(self) -> str:
        return next(iter(self.servers.community.state.rooms))

    @property
    def url(self) -> str:
        pubkey = self.servers.community.pubkey_hex
        return f"{self.servers.community_url}/{self.room}?public_key={pubkey}"

    async def member(self) -> CommunityClient:
        """A new Session user who has joined the room."""
        client, room = CommunityClient.from_url(self.http, Identity.generate(), self.url)
        await client.join(room)
        return client


@pytest.fixture
async def devnet(servers: CommunityAndFiles) -> AsyncIterator[CommunityDevnet]:
    async with aiohttp.ClientSession() as http:
        yield CommunityDevnet(servers, http)


@pytest.fixture
async def matrix_users() -> AsyncIterator[MatrixUsers]:
    users = MatrixUsers(require_env("SMB_TEST_SYNAPSE_URL"), require_env("SMB_TEST_SHARED_SECRET"))
    yield users
    await users.close()


async def room_events(client: Client, room_id: str, limit: int = 100) -> list[Any]:
    """The room's latest events, oldest first."""
    page = await client.get_messages(
        RoomID(room_id), direction=PaginationDirection.BACKWARD, limit=limit
    )
    return list(reversed(page.events))


async def messages_from(client: Client, room_id: str, sender: str) -> list[str]:
    """Bodies of the messages ``sender`` sent to the room, oldest first (redacted messages,
    which have no body any more, left out)."""
    return [
        e.content.body
        for e in await room_events(client, room_id)
        if str(e.sender) == sender
        and str(e.type) == "m.room.message"
        and isinstance(getattr(e.content, "body", None), str)
    ]


def devnet_settings(world: DmWorld) -> dict[str, Any]:
    """The ``session`` settings that point a bridge at the devnet of ``world``."""
    net = world.net
    assert net.seed_cert is not None
    return {
        "seed_nodes": [net.seed_url],
        "seed_cert_sha256": {net.seed_url: net.seed_cert.sha256_hex},
        "file_server": world.files.base_url,
        "file_server_ed25519_pubkey": world.files.server_pubkey or "",
        "poll_interval": 0.1,
    }


def use_devnet(config: Config, world: DmWorld) -> None:
    """Point ``config`` (of an in-process bridge) at the devnet of ``world``."""
    for key, value in devnet_settings(world).items():
        setattr(config.session, key, value)


@dataclass
class DmEnv:
    """A running bridge wired to a running devnet, and a factory of Session users on it."""

    app: BridgeApp
    world: DmWorld

    @property
    def net(self) -> Devnet:
        return self.world.net

    async def session_user(self, name: str) -> tuple[SessionClient, Inbox]:
        inbox = Inbox()
        client = await self.world.client(inbox=inbox, start=False)
        await client.set_profile(name)
        await client.start()
        return client, inbox

    async def portal_room(self, ours: str, peer: str) -> RoomID:
        async def room() -> str | None:
            portal = await self.app.repos.portals.get_by_key(
                PortalKind.DIRECT, direct_key(ours, peer)
            )
            return portal.mxid if portal is not None else None

        return RoomID(await wait_for(room, "the direct-chat portal", WAIT_TIMEOUT))


@pytest.fixture
async def dm_env(bridge_config: Config) -> AsyncIterator[DmEnv]:
    async with dm_world(seed_http=True) as world:
        use_devnet(bridge_config, world)
        bridge_config.bridge.permissions = {"localhost": "user"}
        app = BridgeApp(bridge_config)
        await app.start()
        try:
            yield DmEnv(app, world)
        finally:
            await app.stop()
