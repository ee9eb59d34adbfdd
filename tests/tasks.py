"""Stopping background tasks in tests: cancel, then wait until the task has really ended, so
that its cleanup (child tasks, database connections) is done before the fixtures close."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        async with asyncio.timeout(10):
            await task
