"""The failure policy's classification, and the one retry-then-park loop every path uses
(docs/architecture.md §4.7).

*Transient*: the other side or the database cannot be reached now (connection errors,
timeouts, HTTP 5xx and 429, the storage network or a community server unreachable, the
database unavailable). Retried with capped backoff for as long as it takes; never counts
toward giving up. *Permanent*: everything else (a 4xx that is not 429, undecodable data, a
bug). Tried :data:`PERMANENT_ATTEMPTS` times, then parked in the dead-letter table so the
rest of the conversation goes on.

An error is transient when it, or an error it was raised from (``raise … from e``), is one of
the above; an explicit :class:`PermanentFailure` or :class:`TemporaryFailure` (raised by the
outbox's deliverers, :mod:`bridge.core.portal.outbox`) decides on the spot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from bridge.backoff import Backoff
from bridge.db.errors import is_unavailable
from bridge.session.files import FileServerError
from bridge.session.snode.errors import SnodeError
from bridge.session.sogs.errors import CommunityError, CommunityUnreachable
from bridge.session.subscribers import RetryLater

log = logging.getLogger("bridge.core.portal.failures")

__all__ = [
    "PERMANENT_ATTEMPTS",
    "PermanentFailure",
    "TemporaryFailure",
    "Transient",
    "attempt_or_park",
    "is_transient",
]

#: How often a permanent failure is tried before the item is parked.
PERMANENT_ATTEMPTS = 3
#: Between those tries: 1 s, then 2 s.
PERMANENT_BACKOFF = Backoff(1.0, 10.0)
#: Between tries of a transient failure: doubling from 1 s, at most a minute, ±20 %.
TRANSIENT_BACKOFF = Backoff(1.0, 60.0, jitter=(0.8, 1.2))


class TemporaryFailure(Exception):
    """Delivery failed but may work on a later attempt."""


class PermanentFailure(Exception):
    """Delivery can never work; the message says why, for the user."""


# OSErrors that are about local files, not about reaching something.
_LOCAL_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError)


class Transient(Exception):
    """Raised by :func:`attempt_or_park`: the work failed transiently; try again later."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def _status_transient(status: int | None) -> bool:
    # No status: the server never answered (connection refused, timeout, TLS).
    return status is None or status >= 500 or status == 429


def _one_is_transient(error: BaseException) -> bool | None:
    """True/False when ``error`` alone decides; None when its cause must be asked."""
    if isinstance(error, TemporaryFailure | Transient | RetryLater):
        return True
    if isinstance(error, PermanentFailure):
        return False
    if isinstance(error, MatrixRequestError):
        return error.http_status >= 500 or error.http_status == 429
    if isinstance(error, MatrixConnectionError | aiohttp.ClientConnectionError):
        return True
    if isinstance(error, aiohttp.ClientResponseError):
        return _status_transient(error.status)
    if isinstance(error, CommunityUnreachable):
        return True
    if isinstance(error, CommunityError | SnodeError | FileServerError):
        return _status_transient(error.status)
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    if isinstance(error, OSError) and not isinstance(error, _LOCAL_OS_ERRORS):
        return True  # socket errors: name resolution, unreachable network...
    if is_unavailable(error):
        return True
    return None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a transient failure (module docstring)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _one_is_transient(current)
        if verdict is not None:
            return verdict
        current = current.__cause__
    return False


Park = Callable[[BaseException, int], Awaitable[None]]


async def attempt_or_park(
    work: Callable[[], Awaitable[None]],
    what: str,
    park: Park,
    *,
    attempts: int = PERMANENT_ATTEMPTS,
    backoff: Backoff | None = None,
) -> bool:
    """Run ``work``; True once it succeeded, False if it failed for good and was parked.

    A transient failure raises :class:`Transient` at once (the caller waits and comes back; the
    count of permanent tries starts afresh). A permanent one is tried again up to ``attempts``
    times (waiting ``backoff``, by default :data:`PERMANENT_BACKOFF`), then ``park(error,
    attempts)`` keeps it; if parking fails transiently (the database is away),
    :class:`Transient` too.
    """
    tries = 0
    while True:
        try:
            await work()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if is_transient(e):
                raise Transient(e) from e
            tries += 1
            if tries < attempts:
                log.warning("%s failed (try %d of %d): %s", what, tries, attempts, e)
                await (backoff or PERMANENT_BACKOFF).sleep(tries)
                continue
            log.error("%s failed %d times; parking it", what, tries, exc_info=e)
            try:
                await park(e, tries)
            except asyncio.CancelledError:
                raise
            except Exception as parking:
                if is_transient(parking):
                    raise Transient(parking) from parking
                raise
            return False
