"""Which database errors mean "the database is unavailable, try again later".

The failure policy (docs/architecture.md §4.7) retries those for as long as it takes, and
treats every other database error as a bug. The SQL layer is the only one that knows the
driver's and SQLAlchemy's error types, so the classification lives here.

Seen in practice: PostgreSQL stopped under a pooled connection gives ``DBAPIError`` with
``connection_invalidated``; a new connection to a stopped server gives a plain
``ConnectionRefusedError`` (an ``OSError``, classified by the caller); a server that is
starting up refuses with asyncpg's ``CannotConnectNowError``; SQLite under a competing writer
gives ``OperationalError: database is locked``.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its error classes
from sqlalchemy import exc

from bridge import metrics

__all__ = ["is_unavailable"]

# asyncpg's own errors for a connection that broke or could not be made (they reach us
# wrapped in SQLAlchemy's DBAPIError, or bare from a connect).
_DRIVER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # 08xxx connection exceptions
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx shutdown, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53xxx too many connections, disk full
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def _driver_error(error: BaseException) -> BaseException | None:
    orig = getattr(error, "orig", None)
    if isinstance(orig, BaseException):
        return orig.__cause__ if isinstance(orig.__cause__, BaseException) else orig
    return None


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database could not be reached or could not answer now
    (each such error is counted as a database error in the metrics)."""
    unavailable = _unavailable(error)
    if unavailable:
        metrics.database_error()
    return unavailable


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, _DRIVER_UNAVAILABLE):
        return True
    if isinstance(
        error,
        exc.OperationalError | exc.InterfaceError | exc.DisconnectionError | exc.TimeoutError,
    ):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        driver = _driver_error(error)
        return driver is not None and isinstance(driver, _DRIVER_UNAVAILABLE)
    return False
