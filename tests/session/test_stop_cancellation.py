"""Stopping a Session loop never swallows the stopper's own cancellation (bridge/stopping.py,
``cancel_and_wait``): the shared swarm polling, a 1:1 inbox, the user configs and the group
client each wait for their task through it.

Each loop gets a task that is slow to unwind (it swallows its first cancellation, then waits);
the stopper is cancelled meanwhile and must end cancelled, not return as if stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

from bridge.session.dm_events import Subscribers
from bridge.session.dm_inbox import InboxLoop
from bridge.session.groups.member import GroupsClient
from bridge.session.keys import Identity
from bridge.session.onetoone import MessageKeys
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.swarm_polling import SwarmPolling
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs

TIMEOUT = 5.0
NO_SNODE = cast(Any, None)  # stopping touches no network


class SlowToUnwind:
    """A task body that swallows every cancellation until released (a loop slow to unwind,
    e.g. one finishing a delivery)."""

    def __init__(self) -> None:
        self.cancels = 0
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancels += 1
                self.cancelled.set()


async def stopper_is_cancelled(
    stop: Callable[[], Awaitable[None]], body: SlowToUnwind, cancels: int = 1
) -> None:
    """Stop, wait until the loop's task got ``cancels`` cancellations (the stopper is then
    waiting for it to end), cancel the stopper: it must end cancelled."""
    stopper = asyncio.create_task(stop())

    async def cancelled_enough() -> None:
        while body.cancels < cancels:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(cancelled_enough(), TIMEOUT)
    assert not stopper.done()  # still waiting for the task to end
    stopper.cancel()
    done, _ = await asyncio.wait({stopper}, timeout=TIMEOUT)
    body.release.set()
    if not done:
        await asyncio.wait({stopper}, timeout=TIMEOUT)
    assert done, "the stopper did not end when cancelled"
    assert stopper.cancelled(), "the stopper's cancellation was swallowed"


async def test_shared_polling_close() -> None:
    polling = SwarmPolling(NO_SNODE)
    body = SlowToUnwind()
    task = polling._spawn(body())
    await stopper_is_cancelled(polling.close, body)
    await asyncio.wait_for(task, TIMEOUT)


async def test_user_configs_stop() -> None:
    configs = UserConfigs(Identity.generate(), NO_SNODE, MemoryUserConfigStore(), NO_SNODE)
    body = SlowToUnwind()
    task = configs._task = asyncio.create_task(body())
    await stopper_is_cancelled(configs.stop, body)
    await asyncio.wait_for(task, TIMEOUT)


async def test_inbox_stop() -> None:
    seed = Identity.generate().ed25519_secret[:32]
    inbox = InboxLoop(
        "inbox",
        MessageKeys.from_seed(seed),
        Ed25519Signer.from_seed(seed),
        NO_SNODE,
        NO_SNODE,
        Subscribers("inbox"),
        sent_by_us=lambda _: False,
        poll_interval=1.0,
        max_count=None,
    )
    body = SlowToUnwind()
    task = inbox._task = asyncio.create_task(body())
    # past its grace time the task is cancelled again; the stopper then waits for its end
    await stopper_is_cancelled(lambda: inbox.stop(timeout=0.05), body, cancels=2)
    await asyncio.wait_for(task, TIMEOUT)


async def test_group_client_stop() -> None:
    snode = SimpleNamespace(clock=SimpleNamespace(now_ms=lambda: 0))
    client = GroupsClient(Identity.generate(), cast(Any, snode), NO_SNODE)
    body = SlowToUnwind()
    task = client._task = asyncio.create_task(body())
    await stopper_is_cancelled(lambda: client.stop(timeout=0.05), body, cancels=2)
    await asyncio.wait_for(task, TIMEOUT)


async def test_a_loop_that_ends_in_time_is_stopped_quietly() -> None:
    """The ordinary case: the task ends on its cancellation and stop returns."""
    configs = UserConfigs(Identity.generate(), NO_SNODE, MemoryUserConfigStore(), NO_SNODE)
    task = configs._task = asyncio.create_task(asyncio.Event().wait())
    await asyncio.wait_for(configs.stop(), TIMEOUT)
    assert task.cancelled()
