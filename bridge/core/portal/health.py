"""One line of the bridge's ``status``: a check of something the bridge depends on.

Every check is bounded in time (:data:`CHECK_TIMEOUT_S`), so ``status`` answers even when a
server hangs, and its failure is reported as a short reason (the exception's first line),
never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from mautrix.appservice import IntentAPI

from bridge.db.engine import Database

CHECK_TIMEOUT_S = 10.0
MAX_REASON = 200


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``problem`` is None when it passed."""

    name: str
    problem: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def reason(error: BaseException) -> str:
    """A short, one-line description of ``error``."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    described = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return described[:MAX_REASON]


async def run_check(
    name: str, probe: Awaitable[str | None], timeout: float = CHECK_TIMEOUT_S
) -> Check:
    """Await ``probe`` (which returns an optional detail) within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            detail = await probe
    except TimeoutError:
        return Check(name, f"no answer within {timeout:g} s")
    except Exception as e:
        return Check(name, reason(e))
    return Check(name, detail=detail or "")


async def homeserver_check(intent: IntentAPI, address: str) -> Check:
    """Does the homeserver answer, and accept the bridge's token (``whoami``)?"""

    async def probe() -> str:
        whoami = await intent.whoami()
        return f"{address}, the bot is {whoami.user_id}"

    return await run_check("homeserver", probe())


async def database_check(db: Database) -> Check:
    """Does the database answer a trivial query?"""

    async def probe() -> str:
        await db.ping()
        return db.dialect

    return await run_check("database", probe())
