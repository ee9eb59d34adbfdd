"""The group client of an identity subscribes to its 1:1 client before that client starts
polling (bridge/core/direct/accounts.py ``before_start``, bridge/core/group/clients.py): an
invite delivered by the first 1:1 poll can never be acknowledged unseen by the group side."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bridge.core.direct.accounts import Account, SessionAccounts
from bridge.core.group.clients import GroupClients
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.store import Membership
from bridge.session.keys import Identity
from bridge.session.messages import Profile


class EmptyStore:
    """A group store with no membership (the group client has nothing to poll)."""

    async def memberships(self) -> list[Membership]:
        return []


async def test_group_client_subscribes_before_the_1to1_client_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []
    real_subscribe = SessionClient.subscribe

    def subscribe(self: SessionClient, callback: Any) -> Callable[[], None]:
        steps.append(f"subscribe {getattr(callback, '__qualname__', '?')}")
        return real_subscribe(self, callback)

    async def start(self: SessionClient) -> None:
        steps.append("1:1 polls")

    monkeypatch.setattr(SessionClient, "subscribe", subscribe)
    monkeypatch.setattr(SessionClient, "start", start)

    accounts = SessionAccounts(
        snode=cast(Any, object()),
        files=cast(Any, object()),
        cursors=cast(Any, object()),
        poll_interval=60.0,
    )

    async def direct_handler(account: Account, client: SessionClient, event: ClientEvent) -> None:
        return None

    accounts.bind_handler(direct_handler)
    clock = SimpleNamespace(now_ms=lambda: 0)
    groups = GroupClients(
        snode=cast(Any, SimpleNamespace(clock=clock)),
        store_of=lambda session_id: cast(Any, EmptyStore()),
        session_client=lambda session_id: None,  # not running yet: the hook passes it
        bot_session_id="",
        poll_interval=60.0,
    )

    async def group_handler(session_id: str, event: object) -> None:
        return None

    groups.bind_handler(group_handler)
    accounts.before_start(groups.start_identity)
    identity = Identity.generate()
    try:
        await accounts.start_bot(identity, Profile(display_name="Bridge bot"))
        group_client = groups.client(identity.session_id.value)
        assert isinstance(group_client, GroupsClient)
        assert steps.index(f"subscribe {GroupsClient.handle_dm_event.__qualname__}") < (
            steps.index("1:1 polls")
        )
        assert steps[-1] == "1:1 polls"
        assert group_client.profile == Profile(
            display_name="Bridge bot"
        )  # it rides on that very 1:1 client
    finally:
        await groups.stop()
