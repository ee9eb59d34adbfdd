"""Helpers the integration tests share: waiting for the bot's answers and for room events,
management rooms, bridged community rooms, and the bridge run as its own process."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path as FilePath
from typing import Any

import aiohttp
from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.types import EventID, EventType, RoomCreatePreset, RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import Config, load_config
from bridge.config_file import update_values
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import CommunityMessage
from tests.integration.conftest import (
    WAIT_TIMEOUT,
    create_postgres_database,
    messages_from,
    require_env,
    room_events,
    wait_for,
)

ROOT = FilePath(__file__).resolve().parents[2]


async def start_bridge(config: Config, admin: str) -> BridgeApp:
    """A started bridge that polls communities fast, with ``admin`` as its admin."""
    config.bridge.permissions = {"localhost": "user", admin: "admin"}
    config.session.community_poll_interval = 0.2
    app = BridgeApp(config)
    await app.start()
    return app


async def bot_says(
    user: Client, room_id: str, bot: str, pattern: str, timeout: float = WAIT_TIMEOUT
) -> str:
    """The first message of ``bot`` in the room that matches ``pattern``, once it is there."""

    async def find() -> str | None:
        bodies = await messages_from(user, str(room_id), bot)
        return next((b for b in bodies if re.search(pattern, b)), None)

    return await wait_for(find, f"the bot to say {pattern!r}", timeout)


async def has_member(user: Client, room_id: str, mxid: str) -> bool:
    return UserID(mxid) in await user.get_joined_members(RoomID(room_id))


async def open_management_room(
    user: Client, bot: str, preset: RoomCreatePreset = RoomCreatePreset.PRIVATE
) -> RoomID:
    """A DM with the bot, once the bot has joined and welcomed ``user``."""
    room_id = await user.create_room(is_direct=True, invitees=[UserID(bot)], preset=preset)
    await bot_says(user, room_id, bot, "management room")
    return room_id


async def bridged_room(
    user: Client, bot: str, url: str, *, rights_at_creation: bool = False
) -> RoomID:
    """A new room of ``user`` bridged by the bot to the community room at ``url``.

    The bot gets moderator rights at creation, or (by default) only after it refused to
    bridge without them.
    """
    levels = {"users": {bot: 50}} if rights_at_creation else None
    room_id = await user.create_room(invitees=[UserID(bot)], power_level_override=levels)
    await wait_for(lambda: has_member(user, room_id, bot), "the bot to join")
    if not rights_at_creation:
        await user.send_text(room_id, f"!session bridge {url}")
        await bot_says(user, room_id, bot, "I need moderator rights")
        state = await user.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)
        state.set_user_level(UserID(bot), 50)
        await user.send_state_event(room_id, EventType.ROOM_POWER_LEVELS, state)
    await user.send_text(room_id, f"!session bridge {url}")
    await bot_says(user, room_id, bot, "now bridged")
    return room_id


async def matrix_event(
    user: Client,
    room_id: RoomID,
    what: str,
    match: Callable[[Any], bool],
    timeout: float = WAIT_TIMEOUT,
) -> Any:
    """The first room event for which ``match(event)`` is true."""

    async def find() -> Any:
        return next((e for e in await room_events(user, str(room_id)) if match(e)), None)

    return await wait_for(find, what, timeout)


async def matrix_sees(user: Client, room_id: RoomID, pattern: str) -> Any:
    """The first message in the room whose body matches ``pattern``."""

    def match(event: Any) -> bool:
        body = getattr(event.content, "body", None)
        return str(event.type) == "m.room.message" and bool(body and re.search(pattern, body))

    return await matrix_event(user, room_id, f"Matrix to see {pattern!r}", match)


async def is_redacted(user: Client, room_id: RoomID, event_id: str) -> bool:
    raw = await user.api.request(Method.GET, Path.v3.rooms[room_id].event[EventID(event_id)])
    return "redacted_because" in raw.get("unsigned", {})


async def session_sees(client: CommunityClient, room: str, pattern: str) -> CommunityMessage:
    """The first recent post in the community room whose text matches ``pattern``."""

    async def find() -> CommunityMessage | None:
        for msg in await client.recent(room, 50):
            content = msg.content
            if isinstance(content, VisibleMessage) and re.search(pattern, content.body or ""):
                return msg
        return None

    return await wait_for(find, f"Session to see {pattern!r}")


async def write_process_config(
    tmp_path: Path, admin: str, extra: Mapping[tuple[str, str], Any] | None = None
) -> tuple[Path, str]:
    """A config file for a bridge process with its own PostgreSQL database; returns the path
    and the appservice address."""
    source = FilePath(require_env("SMB_TEST_CONFIG"))
    path = tmp_path / "config.yaml"
    path.write_text(source.read_text())
    database = await create_postgres_database(require_env("SMB_TEST_POSTGRES_URL"))
    values: dict[tuple[str, str], Any] = {
        ("database", "url"): database,
        ("bridge", "permissions"): {"localhost": "user", admin: "admin"},
        ("session", "community_poll_interval"): 0.2,
    }
    update_values(path, {**values, **(extra or {})})
    return path, load_config(path).appservice.address


class BridgeProcess:
    """The bridge as its own process (``python -m bridge -c config``), as deployed."""

    def __init__(self, config: FilePath, address: str, log: FilePath) -> None:
        self.config, self.address, self.log = config, address, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "-c", str(self.config),
            cwd=ROOT, stdout=self.log.open("ab"), stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

        async def ready() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{self.address}/_matrix/mau/ready") as resp,
                ):
                    return resp.status == 200
            except aiohttp.ClientError:
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
                return False

        await wait_for(ready, "the bridge process to be ready", timeout=60)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                # Never leave it holding the appservice port for the tests that follow.
                self.proc.kill()
                await self.proc.wait()
                tail = self.log.read_text()[-6000:]
                raise AssertionError(f"the bridge did not stop within 30 s:\n{tail}") from None
        return int(self.proc.returncode or 0)
