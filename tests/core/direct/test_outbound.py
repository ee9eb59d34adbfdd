"""DirectOutbound with a real SQLite database and a recording fake Session client."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.core.direct.accounts import Account, DbPollState
from bridge.core.direct.chats import direct_key
from bridge.core.direct.outbound import DM_KIND, DirectOutbound
from bridge.core.portal.events import Refused
from bridge.core.portal.outbox import PermanentFailure
from bridge.core.portal.outgoing_text import EDIT_MARK
from bridge.core.portal.router import parse_event
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo
from bridge.ids import SessionID
from bridge.session.dm_events import SentMessage
from bridge.session.messages import Profile
from bridge.session.outgoing import OutgoingMessage

OURS = "05" + "a1" * 32
PEER = "05" + "b2" * 32
OWNER = "@alice:example.test"
GHOSTS = re.compile(r"^@session_.*:example\.test$")


TTL_MS = 14 * 24 * 3600 * 1000  # what the real client gives a direct message


@dataclass
class FakeClient:
    """Records what a storage node would see. Every message prepared is encoded afresh (the
    next timestamp, so new bytes, as the real encoder's signature and padding are); storing
    bytes the node already has adds nothing, exactly as the node de-duplicates by hash, but a
    second encoding of the same content is a second, visible message."""

    session_id: SessionID = field(default_factory=lambda: SessionID.parse(OURS))
    sent: list[tuple[str, Any]] = field(default_factory=list)
    clock: int = field(default_factory=lambda: int(time.time() * 1000))
    ttl_ms: int = TTL_MS
    prepared: dict[bytes, tuple[str, Any]] = field(default_factory=dict)
    stored: set[bytes] = field(default_factory=set)
    stores: int = 0
    profile: Profile | None = None

    async def set_profile(self, name: str | None) -> Profile:
        self.profile = Profile(name)
        return self.profile

    def _prepare(self, what: str, to: str, value: Any) -> OutgoingMessage:
        self.clock += 1
        data = f"{what}:{self.clock}".encode()
        self.prepared[data] = (what, value)
        return OutgoingMessage(to, self.clock, self.ttl_ms, data)

    async def send_prepared(self, outgoing: OutgoingMessage) -> SentMessage:
        self.stores += 1
        if outgoing.data not in self.stored:
            self.stored.add(outgoing.data)
            self.sent.append(self.prepared[outgoing.data])
        return SentMessage(outgoing.timestamp, f"hash{outgoing.timestamp}")

    def prepare_text(self, to: str, body: str | None, quote: Any = None, **kw: Any) -> Any:
        return self._prepare("text", to, (body, quote))

    def prepare_reaction(
        self, to: str, author: str, ts: int, emoji: str, remove: bool = False
    ) -> Any:
        return self._prepare("reaction", to, (author, ts, emoji, remove))

    def prepare_unsend(self, to: str, ts: int) -> Any:
        return self._prepare("unsend", to, ts)

    async def send_typing(self, to: str, started: bool) -> Any:
        self.sent.append(("typing", started))

    async def send_read_receipt(self, to: str, timestamps: list[int]) -> Any:
        self.sent.append(("receipt", list(timestamps)))


class FakeAccounts:
    configs = None  # no user configs: the Matrix-name behaviour of logins without them

    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def get(self, session_id: str) -> tuple[Account, FakeClient] | None:
        if session_id != OURS:
            return None
        return Account(OURS, 1, OWNER), self.client


@dataclass
class World:
    db: Database
    outbound: DirectOutbound
    client: FakeClient
    messages: MessageRepo
    outbox: OutboxRepo
    portal: PortalRecord
    cursors: CursorRepo


class NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    portals, messages, outbox = PortalRepo(db), MessageRepo(db), OutboxRepo(db)
    portal = await portals.get_or_create(PortalKind.DIRECT, direct_key(OURS, PEER))
    portal = await portals.set_mxid(portal.id, "!dm:example.test")
    users = UserRepo(db)
    await users.ensure_user(OWNER)
    login = await users.add_login(OURS, b"sealed", mxid=OWNER)
    assert login is not None and login.id == 1
    client = FakeClient()

    async def download(url: str) -> bytes:
        return b"data"

    outbound = DirectOutbound(
        accounts=cast(Any, FakeAccounts(client)),
        messages=messages,
        outbox=outbox,
        portals=portals,
        ghost_pattern=GHOSTS,
        download=download,
        portal_lock=lambda portal_id: NoLock(),
    )
    yield World(db, outbound, client, messages, outbox, portal, CursorRepo(db))
    await db.close()


def event(kind: str, content: dict[str, Any], sender: str = OWNER, **extra: Any) -> Any:
    raw = {
        "type": kind,
        "event_id": f"$e{abs(hash(json.dumps(content, sort_keys=True)))}",
        "room_id": "!dm:example.test",
        "sender": sender,
        "origin_server_ts": 1,
        "content": content,
        **extra,
    }
    return parse_event(raw)


async def deliver_all(world: World) -> None:
    for row in await world.outbox.claim_due(10**15, 100):
        await world.outbound.deliver(row)
        await world.outbox.mark_done(row.id)


async def test_text_is_queued_then_sent_and_mapped(world: World) -> None:
    msg = event("m.room.message", {"msgtype": "m.text", "body": "hi", "m.mentions": {}})
    await world.outbound.handle_message(world.portal, msg, "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    assert row.kind == DM_KIND and json.loads(row.payload)["text"] == "hi"
    await world.outbound.deliver(row)
    assert world.client.sent == [("text", ("hi", None))]
    mapped = await world.messages.get_by_mxid(str(msg.event_id))
    assert mapped is not None and mapped.sender_session_id == OURS and mapped.sender_mxid == OWNER
    # A re-delivery after a crash between the send and marking the row done sends nothing:
    # not even the same bytes again.
    await world.outbound.deliver(row)
    assert len(world.client.sent) == 1 and world.client.stores == 1


async def test_a_recorded_send_is_not_repeated_even_once_its_bytes_expired(world: World) -> None:
    # A row re-claimed after the kept message's lifetime (a long outage) must not be encoded
    # afresh: that would be a second message with a new timestamp in the recipient's chat.
    world.client.ttl_ms = 1
    msg = event("m.room.message", {"msgtype": "m.text", "body": "late", "m.mentions": {}})
    await world.outbound.handle_message(world.portal, msg, "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    await world.outbound.deliver(row)
    again = await world.outbox.get(row.id)
    assert again is not None
    await world.outbound.deliver(again)
    assert world.client.sent == [("text", ("late", None))]


async def test_a_send_interrupted_before_it_was_recorded_is_not_repeated(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = event("m.room.message", {"msgtype": "m.text", "body": "once", "m.mentions": {}})
    await world.outbound.handle_message(world.portal, msg, "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    record = world.messages.add_message

    async def crash(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(world.messages, "add_message", record)
        raise ConnectionError("killed after the store, before the mapping")

    monkeypatch.setattr(world.messages, "add_message", crash)
    with pytest.raises(ConnectionError):
        await world.outbound.deliver(row)
    # The retry (the row as the database has it now) stores the very same message again.
    retry = await world.outbox.get(row.id)
    assert retry is not None and "prepared" in json.loads(retry.payload)
    await world.outbound.deliver(retry)
    assert world.client.stores == 2 and world.client.sent == [("text", ("once", None))]
    # The node saw the same bytes twice (one message), not a second encoding.
    assert len(world.client.stored) == 1
    mapped = await world.messages.get_by_mxid(str(msg.event_id))
    assert mapped is not None and mapped.timestamp == world.client.clock


async def test_the_owners_matrix_name_becomes_their_session_name(world: World) -> None:
    renamed = {"membership": "join", "displayname": "Alice B."}
    await world.outbound.handle_event(
        world.portal, event("m.room.member", renamed, state_key=OWNER)
    )
    assert world.client.profile == Profile("Alice B.")
    # Someone else's member event changes nothing.
    other = "@eve:example.test"
    await world.outbound.handle_event(
        world.portal,
        event("m.room.member", renamed | {"displayname": "Eve"}, other, state_key=other),
    )
    assert world.client.profile == Profile("Alice B.")


async def test_only_the_owner_speaks_for_the_account(world: World) -> None:
    msg = event("m.room.message", {"msgtype": "m.text", "body": "hi"}, sender="@eve:example.test")
    with pytest.raises(Refused, match="Only @alice"):
        await world.outbound.handle_message(world.portal, msg, "Eve")


async def test_reply_and_edit_quote_the_original(world: World) -> None:
    await world.messages.add_message(
        world.portal.id, "$from-peer", "h1", timestamp=77, sender_session_id=PEER
    )
    reply = event(
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "yes",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$from-peer"}},
        },
    )
    await world.outbound.handle_message(world.portal, reply, "Alice")
    await deliver_all(world)
    (_, (body, quote)) = world.client.sent[-1]
    assert body == "yes" and (quote.author, quote.timestamp) == (PEER, 77)

    edit = event(
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* yes!",
            "m.new_content": {"msgtype": "m.text", "body": "yes!"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": str(reply.event_id)},
        },
    )
    await world.outbound.handle_message(world.portal, edit, "Alice")
    await deliver_all(world)
    (_, (body, quote)) = world.client.sent[-1]
    assert body == EDIT_MARK + "yes!" and quote.author == OURS


async def test_reactions_and_redactions(world: World) -> None:
    await world.messages.add_message(
        world.portal.id, "$from-peer", "h1", timestamp=77, sender_session_id=PEER
    )
    react = event(
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$from-peer", "key": "👍"}},
    )
    await world.outbound.handle_event(world.portal, react)
    await deliver_all(world)
    assert world.client.sent[-1] == ("reaction", (PEER, 77, "👍", False))

    unreact = event("m.room.redaction", {}, redacts=str(react.event_id))
    await world.outbound.handle_event(world.portal, unreact)
    await deliver_all(world)
    assert world.client.sent[-1] == ("reaction", (PEER, 77, "👍", True))

    # Only the author may delete: the peer's message cannot be unsent by us.
    delete_theirs = event("m.room.redaction", {"reason": "x"}, redacts="$from-peer")
    await world.outbound.handle_event(world.portal, delete_theirs)
    (row,) = await world.outbox.claim_due(10**15, 10)
    with pytest.raises(PermanentFailure, match="only lets the author"):
        await world.outbound.deliver(row)


async def test_reaction_to_an_unbridged_message_fails_for_good(world: World) -> None:
    react = event(
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$unknown", "key": "x"}},
    )
    await world.outbound.handle_event(world.portal, react)
    (row,) = await world.outbox.claim_due(10**15, 10)
    with pytest.raises(PermanentFailure, match="not on Session"):
        await world.outbound.deliver(row)


async def test_typing_is_sent_on_change_only(world: World) -> None:
    typing = {"type": "m.typing", "room_id": "!dm:example.test", "content": {"user_ids": [OWNER]}}
    await world.outbound.handle_ephemeral(typing)
    await world.outbound.handle_ephemeral(typing)
    stopped = {**typing, "content": {"user_ids": []}}
    await world.outbound.handle_ephemeral(stopped)
    for task in list(world.outbound._tasks):
        await task
    assert [v for what, v in world.client.sent if what == "typing"] == [True, False]


async def test_poll_state_persists_cursors_and_seen_hashes(world: World) -> None:
    state = DbPollState(world.cursors)
    assert await state.get_last_hash("node", OURS, 0) is None
    await state.set_last_hash("node", OURS, 0, "h1")
    await state.mark_seen(OURS, "h1", 0)
    again = DbPollState(world.cursors)
    assert await again.get_last_hash("node", OURS, 0) == "h1"
    assert await again.seen(OURS, ["h1", "h2"]) == {"h1"}
    assert await again.seen(PEER, ["h1"]) == set()
