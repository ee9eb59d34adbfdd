"""The appservice endpoint wired to the real durable inbox (SQLite or PostgreSQL), as the bridge
wires it, for tests that send it hostile transactions over real HTTP."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.core.portal.inbox import MatrixInbox
from bridge.db.engine import Database
from bridge.db.migrate import upgrade_to_head
from bridge.db.repos import Repositories
from bridge.matrix.appservice import BridgeAppService

HS_TOKEN = "hs-token-for-tests"
AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
TXN_PATH = "/_matrix/app/v1/transactions/{}"


def message(event_id: str, body: str = "hi", room_id: str = "!r:x") -> dict[str, Any]:
    """A well-formed text message event."""
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "room_id": room_id,
        "sender": "@u:x",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    }


async def _pg_admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def database(backend: str, tmp_dir: str) -> AsyncIterator[str]:
    """The URL of an empty database on ``backend`` (``sqlite`` in ``tmp_dir``, or a new
    PostgreSQL database on the test server, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_dir}/bridge.db"
        return
    server = os.environ.get("SMB_TEST_POSTGRES_URL")
    if not server:
        pytest.fail("SMB_TEST_POSTGRES_URL is not set: run the tests with bash scripts/test.sh")
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        await _pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Endpoint:
    """The running endpoint, what its inbox delivered, and its repositories."""

    client: TestClient[Any, Any]
    appservice: BridgeAppService
    inbox: MatrixInbox
    repos: Repositories
    handled: list[dict[str, Any]] = field(default_factory=list)
    ephemeral: list[dict[str, Any]] = field(default_factory=list)

    async def put(self, txn_id: str, data: bytes | str) -> int:
        """PUT a raw body as transaction ``txn_id`` (already URL-quoted); the status."""
        resp = await self.client.put(TXN_PATH.format(txn_id), data=data, headers=AUTH)
        resp.release()
        return resp.status

    async def stored(self) -> list[dict[str, Any]]:
        """The events stored and not yet handled, in order."""
        return [item.event for item in await self.repos.inbox.pending(0, 100_000)]

    async def settled(self, timeout: float = 120) -> None:
        """Wait until the pump has handled (and forgotten) every stored event."""
        async with asyncio.timeout(timeout):
            while not await self.repos.inbox.is_empty():
                await asyncio.sleep(0.05)


@asynccontextmanager
async def endpoint(
    database_url: str, *, max_body_size: int = 8 * 1024 * 1024, pump: bool = False
) -> AsyncIterator[Endpoint]:
    """The endpoint on a freshly migrated database; ``pump``: the inbox runs and hands stored
    events on (to :attr:`Endpoint.handled`)."""
    await upgrade_to_head(database_url)
    db = Database.from_url(database_url)
    repos = Repositories.create(db)
    handled: list[dict[str, Any]] = []
    ephemeral: list[dict[str, Any]] = []

    async def handle(event: dict[str, Any]) -> None:
        handled.append(event)

    async def handle_ephemeral(edu: dict[str, Any]) -> None:
        # Reads the event the way the direct-chat handler does.
        if edu.get("type") in ("m.typing", "m.receipt"):
            ephemeral.append(edu)

    inbox = MatrixInbox(repos.inbox, handle, handle_ephemeral)
    appservice = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="example.com",
        as_token="as",
        hs_token=HS_TOKEN,
        bot_localpart="sessionbot",
        registration_id="session",
        sink=inbox,
        max_body_size=max_body_size,
    )
    task = asyncio.create_task(inbox.run()) if pump else None
    try:
        async with TestClient(TestServer(appservice.app)) as client:
            yield Endpoint(client, appservice, inbox, repos, handled, ephemeral)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await db.close()
