"""Parked items: what a path gave up on after a permanent failure, and taking them again.

Every path parks the same way (docs/architecture.md §4.7): :meth:`DeadLetters.park` stores
the item with its error and what the path needs to take it again (a JSON ``payload``). An
admin lists them (``deadletters``) and retries them (``retry``): each path registers how it
takes an item back. The Matrix inbox and the outbox queue it again (it is then handled in
order with everything else, and parked anew if it fails again); Session direct messages and
community posts are handled again at once, and stay parked if that fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import metrics
from bridge.db.records import DeadLetterPath, DeadLetterRecord
from bridge.db.repos.deadletters import DeadLetterRepo

log = logging.getLogger("bridge.core.portal.deadletters")

__all__ = ["DeadLetters", "RetryFailed", "describe_error"]

#: Takes a parked item back into its path; raises if it cannot (the item stays parked).
Requeue = Callable[[DeadLetterRecord], Awaitable[None]]


class RetryFailed(Exception):
    """A parked item could not be taken again; the message says why (for the admin)."""


def describe_error(error: BaseException | str) -> str:
    """One line for the dead-letter row and the admin: the error's type and first line."""
    if isinstance(error, str):
        return error
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class DeadLetters:
    """Parks items and takes them back into the path they failed on."""

    def __init__(self, repo: DeadLetterRepo) -> None:
        self._repo = repo
        self._paths: dict[DeadLetterPath, Requeue] = {}

    def register(self, path: DeadLetterPath, requeue: Requeue) -> None:
        """How ``retry`` puts items of ``path`` back."""
        self._paths[path] = requeue

    async def park(
        self,
        path: DeadLetterPath,
        what: str,
        payload: dict[str, Any],
        error: BaseException | str,
        *,
        attempts: int,
        portal_id: int | None = None,
    ) -> DeadLetterRecord:
        """Keep ``what`` (described for the admin) with ``error``; returns the stored row."""
        text = describe_error(error)
        record = await self._repo.park(
            path,
            what,
            json.dumps(payload, separators=(",", ":")),
            text,
            attempts=attempts,
            portal_id=portal_id,
        )
        log.warning(
            "Parked %s as dead letter %d after %d tries: %s", what, record.id, attempts, text
        )
        metrics.failed(metrics.PERMANENT, path.value)
        return record

    async def list(self, limit: int | None = None) -> list[DeadLetterRecord]:
        """Parked items, oldest first."""
        return await self._repo.list(limit)

    async def count(self) -> int:
        return await self._repo.count()

    async def retry(self, item_id: int) -> DeadLetterRecord:
        """Take item ``item_id`` back into its path; returns it. :class:`LookupError` if there
        is no such item, :class:`RetryFailed` if its path could not take it (it stays)."""
        record = await self._repo.get(item_id)
        if record is None:
            raise LookupError(f"no parked item {item_id}")
        requeue = self._paths.get(record.path)
        if requeue is None:
            raise RetryFailed(f"the {record.path.value} path is not running")
        try:
            await requeue(record)
        except RetryFailed:
            raise
        except Exception as e:
            log.warning("Retrying dead letter %d failed", item_id, exc_info=True)
            raise RetryFailed(describe_error(e)) from e
        await self._repo.take(item_id)
        log.info(
            "Dead letter %d (%s) taken back by the %s path", item_id, record.what, record.path
        )
        return record


def payload_of(record: DeadLetterRecord) -> dict[str, Any]:
    """The JSON payload of a parked item (what its path stored)."""
    value = json.loads(record.payload)
    if not isinstance(value, dict):
        raise RetryFailed("the parked item's payload is not an object")
    return value
