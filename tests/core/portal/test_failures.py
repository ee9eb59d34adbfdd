"""The failure policy's classification and its retry-then-park loop (docs/architecture.md
§4.7): what is transient (retried for as long as it takes), what is permanent (tried a few
times, then parked)."""

from __future__ import annotations

import sqlite3

import aiohttp
import pytest
from mautrix.errors import (
    IntentError,
    MatrixConnectionError,
    MatrixUnknownRequestError,
    MForbidden,
    MLimitExceeded,
    MUnknown,
)
from sqlalchemy import exc

from bridge.backoff import Backoff
from bridge.core.portal import failures
from bridge.core.portal.failures import (
    PermanentFailure,
    TemporaryFailure,
    Transient,
    attempt_or_park,
    is_transient,
)
from bridge.session.files import FileServerError, FileServerUnreachable
from bridge.session.snode.errors import BadRequest, SwarmUnavailable
from bridge.session.sogs.errors import CommunityHttpError, CommunityUnreachable, RoomNotFound
from bridge.session.subscribers import RetryLater


def wrapped(error: BaseException) -> Exception:
    try:
        raise IntentError("Failed to join room") from error
    except IntentError as e:
        return e


TRANSIENT = [
    TemporaryFailure("busy"),
    RetryLater("later"),
    MatrixConnectionError("Cannot connect to host"),
    MUnknown(502, "bad gateway"),
    MLimitExceeded(429, "slow down"),
    wrapped(MatrixConnectionError("refused")),
    aiohttp.ServerDisconnectedError(),
    TimeoutError(),
    ConnectionRefusedError(111, "refused"),
    CommunityUnreachable("cannot reach"),
    CommunityHttpError("busy", status=503),
    CommunityHttpError("slow down", status=429),
    SwarmUnavailable("no node answered"),
    FileServerUnreachable("cannot reach file server"),
    exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
    exc.DBAPIError("SELECT", {}, Exception("closed"), connection_invalidated=True),
]
PERMANENT = [
    PermanentFailure("refused"),
    ValueError("a bug"),
    KeyError("x"),
    MForbidden(403, "not allowed"),
    MatrixUnknownRequestError(413, "too large"),
    wrapped(MForbidden(403, "not in room")),
    RoomNotFound("no such room", status=404),
    BadRequest("bad", status=400),
    FileServerError("gone", status=404),
    FileNotFoundError("local file"),
    exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent(error: BaseException) -> None:
    assert not is_transient(error)


def test_an_explicit_permanent_failure_wins_over_its_transient_cause() -> None:
    try:
        raise PermanentFailure("refused for good") from ConnectionRefusedError()
    except PermanentFailure as e:
        assert not is_transient(e)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))


async def test_a_permanent_failure_is_tried_a_few_times_then_parked() -> None:
    calls, parked = [], []

    async def work() -> None:
        calls.append(1)
        raise ValueError("poison")

    async def park(error: BaseException, tries: int) -> None:
        parked.append((str(error), tries))

    assert await attempt_or_park(work, "item", park) is False
    assert len(calls) == failures.PERMANENT_ATTEMPTS == 3
    assert parked == [("poison", 3)]


async def test_a_permanent_failure_that_clears_is_not_parked() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) < 2:
            raise ValueError("once")

    async def park(error: BaseException, tries: int) -> None:
        raise AssertionError("parked")

    assert await attempt_or_park(work, "item", park) is True


async def test_a_transient_failure_is_raised_at_once_and_never_parked() -> None:
    async def work() -> None:
        raise MatrixConnectionError("homeserver down")

    async def park(error: BaseException, tries: int) -> None:
        raise AssertionError("parked")

    with pytest.raises(Transient) as caught:
        await attempt_or_park(work, "item", park)
    assert isinstance(caught.value.cause, MatrixConnectionError)


async def test_parking_while_the_database_is_down_is_transient() -> None:
    async def work() -> None:
        raise ValueError("poison")

    async def park(error: BaseException, tries: int) -> None:
        raise ConnectionRefusedError("database down")

    with pytest.raises(Transient):
        await attempt_or_park(work, "item", park)
