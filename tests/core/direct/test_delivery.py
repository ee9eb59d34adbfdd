"""Session direct messages under the failure policy (docs/architecture.md §4.7): a transient
failure asks the client to deliver again later (never dropped), a permanent one is parked with
the raw message and the account goes on, and a parked message can be handled again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from mautrix.errors import MatrixConnectionError

from bridge.backoff import Backoff
from bridge.core.direct.accounts import Account
from bridge.core.direct.delivery import DirectDelivery
from bridge.core.portal import failures
from bridge.core.portal.deadletters import DeadLetters
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import DeadLetterPath
from bridge.db.repos.deadletters import DeadLetterRepo
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.keys import Identity
from bridge.session.messages import VisibleMessage
from bridge.session.onetoone import MessageKeys
from bridge.session.outgoing import encode_outgoing
from bridge.session.poller import MemoryPollState
from bridge.session.subscribers import RetryLater


class Accounts:
    def __init__(self, account: Account, client: SessionClient) -> None:
        self.found = (account, client)

    def get(self, session_id: str) -> tuple[Account, SessionClient] | None:
        return self.found if session_id == self.found[0].session_id else None


@pytest.fixture
async def dead_letters(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    yield DeadLetters(DeadLetterRepo(db))
    await db.close()


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "PERMANENT_BACKOFF", Backoff(0.001))


def received(ours: SessionClient, body: str) -> DirectMessageEvent:
    """A message a Session user sent to ``ours``, as its client delivers it."""
    peer = Identity.generate()
    keys = MessageKeys.from_seed(peer.ed25519_seed)
    data = encode_outgoing(
        keys, ours.session_id.value, VisibleMessage(body=body), 1_700_000_000_000, 60_000,
        sync_copy=False,
    ).data  # fmt: skip
    return ours.event_from_data(data, "hash-" + body, 123)


def setup(
    handler: Any, dead_letters: DeadLetters
) -> tuple[DirectDelivery, Account, SessionClient]:
    identity = Identity.generate()
    client = SessionClient(identity, cast(Any, None), MemoryPollState())
    account = Account(identity.session_id.value, 1, "@alice:example.test")
    delivery = DirectDelivery(handler, cast(Any, Accounts(account, client)), dead_letters)
    return delivery, account, client


async def test_a_transient_failure_asks_to_be_delivered_again(dead_letters: DeadLetters) -> None:
    async def handler(account: Account, client: SessionClient, event: ClientEvent) -> None:
        raise MatrixConnectionError("Cannot connect to host localhost:8008")

    delivery, account, client = setup(handler, dead_letters)
    with pytest.raises(RetryLater):
        await delivery(account, client, received(client, "hello"))
    assert await dead_letters.list() == []


async def test_a_permanent_failure_is_parked_and_retry_handles_it_again(
    dead_letters: DeadLetters,
) -> None:
    handled: list[str | None] = []
    broken = {"on": True}

    async def handler(account: Account, client: SessionClient, event: ClientEvent) -> None:
        assert isinstance(event, DirectMessageEvent)
        assert isinstance(event.content, VisibleMessage)
        if broken["on"]:
            raise ValueError("cannot convert")
        handled.append(event.content.body)

    delivery, account, client = setup(handler, dead_letters)
    await delivery(account, client, received(client, "poison"))  # returns: the cursor moves on
    (parked,) = await dead_letters.list()
    assert parked.path is DeadLetterPath.DIRECT
    assert parked.error == "ValueError: cannot convert" and parked.attempts == 3
    assert "VisibleMessage" in parked.what and json.loads(parked.payload)["hash"] == "hash-poison"

    broken["on"] = False
    await dead_letters.retry(parked.id)
    assert handled == ["poison"]
    assert await dead_letters.list() == []
