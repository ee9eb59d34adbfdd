"""The start order of bridge/app.py (docs/architecture.md §3.4, step 8): the outbox is drained
only once every kind and the bridge-made identities' group clients have started, so a row
queued before a restart is not tried against a Session client that is not running yet (it
would fail as "not running" and wait out a backoff)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from bridge.app import BridgeApp
from bridge.config import Config


class Started:
    """What started, in order; the outbox's run records what had started before it."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.before_outbox: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    def part(self, name: str) -> Any:
        order = self.order

        class Part:
            async def start(self) -> None:
                await asyncio.sleep(0)  # a real start awaits: the outbox could run meanwhile
                order.append(name)

        return Part()

    def outbox(self) -> Any:
        started = self

        class Outbox:
            async def run(self) -> None:
                if not started.before_outbox.done():
                    started.before_outbox.set_result(list(started.order))
                await asyncio.Event().wait()  # drains until cancelled

        return Outbox()


def config(tmp_path: Path) -> Config:
    base = Config()
    key = base64.b64encode(bytes(range(32))).decode()
    return replace(
        base,
        database=replace(base.database, url=f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"),
        bridge=replace(base.bridge, secrets_key=key),
    )


async def test_the_outbox_drains_only_after_the_session_clients_started(tmp_path: Path) -> None:
    app = BridgeApp(config(tmp_path))
    started = Started()
    app._kinds = [cast(Any, started.part(k)) for k in ("community", "direct", "group")]
    app._made_ids = cast(Any, started.part("made identities"))
    app._outbox = cast(Any, started.outbox())
    try:
        await app._start_session_side()
        before = await asyncio.wait_for(started.before_outbox, 5)
        assert [loop.name for loop in app.supervisor.loops] == ["outbox"]
    finally:
        await app.supervisor.stop()
        await app.db.close()
    assert before == ["community", "direct", "group", "made identities"]


async def test_without_kinds_nothing_is_drained(tmp_path: Path) -> None:
    """A start that failed before the kinds were built spawns no outbox."""
    app = BridgeApp(config(tmp_path))
    try:
        await app._start_session_side()
        assert app.supervisor.loops == []
    finally:
        await app.db.close()
