"""A transient failure of the group handler (the database away) is waited for, not counted as
a failed try (bridge/core/group/clients.py; docs/architecture.md §4.7): the group client is
told :class:`RetryLater`, which it retries without limit, where a plain failure would be
dropped after a few tries. The fault test tests/integration/test_faults.py (PostgreSQL stopped
20 s) lost group messages before this."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import exc

from bridge.core.group.clients import GroupClients
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.store import Membership
from bridge.session.keys import Identity
from bridge.session.subscribers import RetryLater


class EmptyStore:
    async def memberships(self) -> list[Membership]:
        return []


async def _deliver_of(monkeypatch: pytest.MonkeyPatch, error: Exception) -> Any:
    """The callback the group client of a new identity was subscribed with, over a handler
    that raises ``error``."""
    callbacks: list[Any] = []

    def subscribe(self: GroupsClient, callback: Any) -> Any:
        callbacks.append(callback)
        return lambda: None

    async def start(self: GroupsClient) -> None:
        return None

    monkeypatch.setattr(GroupsClient, "subscribe", subscribe)
    monkeypatch.setattr(GroupsClient, "start", start)
    clock = SimpleNamespace(now_ms=lambda: 0)
    groups = GroupClients(
        snode=cast(Any, SimpleNamespace(clock=clock)),
        store_of=lambda session_id: cast(Any, EmptyStore()),
        session_client=lambda session_id: None,
        bot_session_id="",
        poll_interval=60.0,
    )

    async def handler(session_id: str, event: object) -> None:
        raise error

    groups.bind_handler(handler)
    await groups.start_identity(Identity.generate())
    assert len(callbacks) == 1
    return callbacks[0]


@pytest.mark.parametrize(
    "error",
    [
        exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused")),
        ConnectionResetError("reset by peer"),
    ],
)
async def test_a_transient_failure_asks_to_retry_later(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    deliver = await _deliver_of(monkeypatch, error)
    with pytest.raises(RetryLater) as raised:
        await deliver(object())
    assert raised.value.__cause__ is error


async def test_a_permanent_failure_stays_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    deliver = await _deliver_of(monkeypatch, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        await deliver(object())
