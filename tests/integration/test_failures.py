"""The failure policy end to end (docs/architecture.md §4.7), with the real Synapse, a real
database and the devnet's community server:

* a community post that can never be bridged (Synapse refuses the event as too large) is
  parked after a few tries, and later posts of the same and of another room still arrive;
* an admin lists parked items (``deadletters``) and retries them (``retry``): a Matrix message
  the community server refused is sent once the refusal is over;
* while the community server answers 503 for longer than ``bridge.outage_notice_after``, the
  sender is told that their message is queued, and told again when it went through.

The database outage (PostgreSQL stopped under a running bridge) is in test_database_outage.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mautrix.client import Client
from mautrix.types import RoomID

from bridge import app as bridge_app
from bridge.app import BridgeApp
from bridge.config import Config, load_config
from bridge.db.engine import Database
from bridge.db.records import OutboxStatus, PortalKind
from bridge.db.repos import Repositories
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.integration.conftest import MatrixUsers, wait_for
from tests.integration.helpers import (
    BridgeProcess,
    bot_says,
    bridged_room,
    matrix_sees,
    open_management_room,
    session_sees,
    start_bridge,
    write_process_config,
)
from tests.sessionnet.extras import CommunityAndFiles

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POST_PATH = re.compile(r"/room/[^/]+/message")
# A Session post whose Matrix event would be over Synapse's 64 KiB event limit: Synapse answers
# 413 M_TOO_LARGE, which no retry changes (nothing cuts community posts today).
HUGE = "poison " * 12_000


class PostFaults:
    """Makes the community server refuse new posts with ``status`` while it is set."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.refused = 0

    @property
    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def fault(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.status and request.method == "POST" and POST_PATH.fullmatch(request.path):
                self.refused += 1
                return web.Response(status=self.status, text="test fault")
            return await handler(request)

        return fault


@dataclass
class Community:
    servers: CommunityAndFiles
    faults: PostFaults
    http: aiohttp.ClientSession

    def url(self, room: str) -> str:
        pubkey = self.servers.community.pubkey_hex
        return f"{self.servers.community_url}/{room}?public_key={pubkey}"

    @property
    def rooms(self) -> list[str]:
        return list(self.servers.community.state.rooms)

    async def member(self, room: str) -> CommunityClient:
        client, token = CommunityClient.from_url(self.http, Identity.generate(), self.url(room))
        await client.join(token)
        return client


@pytest.fixture
async def community() -> AsyncIterator[Community]:
    faults = PostFaults()
    servers = CommunityAndFiles(middlewares=[faults.middleware])
    await servers.start()
    async with aiohttp.ClientSession() as http:
        yield Community(servers, faults, http)
    await servers.stop()


async def admin_bridge(config: Config, users: MatrixUsers) -> tuple[BridgeApp, Client]:
    alice = await users.new("alice")
    return await start_bridge(config, str(alice.mxid)), alice


async def test_a_poison_post_is_parked_and_the_conversations_go_on(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    app, alice = await admin_bridge(bridge_config, matrix_users)
    try:
        bot = bridge_config.bot_mxid
        lobby, dev = community.rooms[:2]
        lobby_room = await bridged_room(alice, bot, community.url(lobby))
        dev_room = await bridged_room(alice, bot, community.url(dev))
        sam = await community.member(lobby)
        await sam.join(dev)

        await sam.post(lobby, VisibleMessage(body="before the poison"))
        await matrix_sees(alice, lobby_room, "^before the poison$")
        await sam.post(lobby, VisibleMessage(body=HUGE))
        await sam.post(lobby, VisibleMessage(body="after the poison"))
        await sam.post(dev, VisibleMessage(body="meanwhile in dev"))

        # The rest of that room, and the other room of the server, still arrive.
        await matrix_sees(alice, lobby_room, "^after the poison$")
        await matrix_sees(alice, dev_room, "^meanwhile in dev$")
        await sam.post(lobby, VisibleMessage(body="and later"))
        await matrix_sees(alice, lobby_room, "^and later$")

        # The admin sees the parked post, with why it failed; retrying it fails the same way
        # (Synapse still refuses it) and the bot says so; it stays parked.
        mgmt = await open_management_room(alice, bot)
        await alice.send_text(mgmt, "deadletters")
        listing = await bot_says(alice, mgmt, bot, r"^1 parked item\(s\)")
        (line,) = [x for x in listing.splitlines() if x.startswith("- **")]
        item = re.match(r"- \*\*(\d+)\*\* · community · community post \d+ ", line)
        assert item is not None, line
        assert f"in {lobby} · 3 tries" in line and "MTooLarge: event too large" in line, line
        await alice.send_text(mgmt, f"retry {item[1]}")
        await bot_says(alice, mgmt, bot, f"^Could not retry parked item {item[1]}: .*stays parked")
    finally:
        await app.stop()


async def test_a_refused_message_is_parked_told_and_sent_by_retry(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    app, alice = await admin_bridge(bridge_config, matrix_users)
    try:
        bot = bridge_config.bot_mxid
        lobby = community.rooms[0]
        room_id = await bridged_room(alice, bot, community.url(lobby))
        sam = await community.member(lobby)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")

        # The community server refuses posts (403): the message fails for good, the sender is
        # told, the item is parked, and the next message goes through once it accepts again.
        community.faults.status = 403
        await alice.send_text(room_id, "refused at first")
        await bot_says(
            alice, room_id, bot, "^Not sent to Session: the community server does not allow"
        )
        community.faults.status = None
        await alice.send_text(room_id, "accepted later")
        await session_sees(sam, lobby, "accepted later$")

        mgmt = await open_management_room(alice, bot)
        await alice.send_text(mgmt, "deadletters")
        listing = await bot_says(alice, mgmt, bot, r"^1 parked item\(s\)")
        item = re.search(r"- \*\*(\d+)\*\* · outbox · outbox row \d+ \(sogs_post\)", listing)
        assert item is not None, listing
        await alice.send_text(mgmt, f"retry {item[1]}")
        await bot_says(alice, mgmt, bot, f"^Retried parked item {item[1]}\\.$")
        await session_sees(sam, lobby, "refused at first$")
        await alice.send_text(mgmt, "deadletters")
        await bot_says(alice, mgmt, bot, "^No parked items")
    finally:
        await app.stop()


async def test_an_outage_past_the_threshold_is_told_and_so_is_its_end(
    bridge_config: Config, matrix_users: MatrixUsers, community: Community
) -> None:
    bridge_config.bridge.outage_notice_after = 1.0
    app, alice = await admin_bridge(bridge_config, matrix_users)
    try:
        bot = bridge_config.bot_mxid
        lobby = community.rooms[0]
        room_id = RoomID(await bridged_room(alice, bot, community.url(lobby)))
        sam = await community.member(lobby)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")

        community.faults.status = 503  # the server is overloaded: try again later
        await alice.send_text(room_id, "sent during the outage")
        await bot_says(alice, room_id, bot, "^Session is unreachable .*your messages are queued")
        assert community.faults.refused >= 2
        community.faults.status = None
        await session_sees(sam, lobby, "sent during the outage$")
        await bot_says(alice, room_id, bot, "^Session is reachable again")
        posts = [m.content for m in await sam.recent(lobby, 50)]
        bodies = [p.body or "" for p in posts if isinstance(p, VisibleMessage)]
        assert sum(b.endswith("sent during the outage") for b in bodies) == 1  # sent once
        assert await app.repos.dead_letters.count() == 0
    finally:
        await app.stop()


async def test_stop_releases_everything_even_when_a_part_fails_to_stop(
    bridge_config: Config,
) -> None:
    app = BridgeApp(bridge_config, homeserver_timeout=30)
    await app.start()

    async def broken() -> None:
        raise RuntimeError("cannot stop")

    app.expiring.stop = broken  # type: ignore[method-assign]
    await app.stop()  # logs the failed step, raises nothing
    assert not app.readiness.ready
    # The listener, the database and the HTTP clients were released: a new bridge starts on
    # the same port and database.
    again = BridgeApp(bridge_config, homeserver_timeout=30)
    await again.start()
    await again.stop()


async def test_stop_returns_in_time_and_releases_everything_when_a_part_hangs(
    bridge_config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A kind whose stop() never returns: stopping gives up on it after its time limit,
    says which step it was, and still closes the listener and the database."""
    monkeypatch.setattr(bridge_app, "STOP_STEP_LIMIT_S", 1.0)
    app = BridgeApp(bridge_config, homeserver_timeout=30)
    await app.start()
    hung = asyncio.Event()

    async def hang() -> None:
        hung.set()
        await asyncio.Event().wait()  # forever, until cancelled

    released: list[str] = []

    def spy(
        what: str, work: Callable[[], Awaitable[None]]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def wrapped() -> None:
            await work()
            released.append(what)

        return wrapped

    community = next(k for k in app._kinds if k.portal_kind is PortalKind.COMMUNITY)
    community.stop = hang  # type: ignore[method-assign]
    app.db.close = spy("database", app.db.close)  # type: ignore[method-assign]
    app.appservice.stop = spy("listener", app.appservice.stop)  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, "bridge.app"):
        # "done when": within the step limit (1 s here) plus the other steps, far below 30 s
        await asyncio.wait_for(app.stop(), 15)
    assert hung.is_set()
    assert "stop: the community portals did not finish in 1 s; going on" in caplog.text
    assert released == ["listener", "database"]
    assert not app.readiness.ready
    assert not app.supervisor.loops  # every loop was cancelled
    # Nothing held on to: a new bridge starts on the same port and database.
    again = BridgeApp(bridge_config, homeserver_timeout=30)
    await again.start()
    await again.stop()


async def _outbox_waiting(config_path: Path) -> bool:
    db = Database.from_url(load_config(config_path).database.url)
    try:
        counts = await Repositories.create(db).outbox.count_by_status()
    finally:
        await db.close()
    return counts.get(OutboxStatus.PENDING, 0) + counts.get(OutboxStatus.SENDING, 0) > 0


async def test_sigterm_while_the_community_server_is_down_exits_promptly(
    tmp_path: Path, matrix_users: MatrixUsers, servers: CommunityAndFiles
) -> None:
    """The process is told to stop while a Matrix message waits in the outbox for a
    community server that is down: it exits 0 within 15 s (docs/architecture.md §4.7)."""
    alice = await matrix_users.new("alice")
    config, address = await write_process_config(tmp_path, str(alice.mxid))
    log_path = tmp_path / "bridge.log"
    process = BridgeProcess(config, address, log_path)
    await process.start()
    paused = False
    try:
        bot = "@sessionbot:localhost"
        url = f"{servers.community_url}/lobby?public_key={servers.community.pubkey_hex}"
        room_id = await bridged_room(alice, bot, url, rights_at_creation=True)
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await servers.pause(files=False)
        paused = True
        await alice.send_text(room_id, "queued while the server is down")
        await wait_for(lambda: _outbox_waiting(config), "the message to wait in the outbox")

        async def retried() -> bool:
            return "must wait" in log_path.read_text()

        await wait_for(retried, "the outbox to retry the message")
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        try:
            # "done when": exits 0 within 15 s
            code = await asyncio.wait_for(process.proc.wait(), 15)
        except TimeoutError:
            tail = log_path.read_text()[-6000:]
            raise AssertionError(f"the bridge did not exit within 15 s:\n{tail}") from None
        assert code == 0, log_path.read_text()[-6000:]
    finally:
        if paused:
            await servers.resume()
        await process.stop()  # kills it if it is still running
