"""GroupOutbound (Matrix → Session in group portals) with a real SQLite database, a real
LoginManager and recording fake group clients."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from bridge.core.group.actors import GroupActors, call_group, not_member_text
from bridge.core.group.inbound import item_key
from bridge.core.group.outbound import REACT_KIND, SEND_KIND, UNSEND_KIND, GroupOutbound
from bridge.core.group.payloads import GroupPayload
from bridge.core.group.relations import GroupRelations
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.events import NoLogin, Refused
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.core.portal.outgoing_text import EDIT_MARK
from bridge.core.portal.router import parse_event
from bridge.core.secrets import SeedVault
from bridge.db import migrate
from bridge.db.engine import Database
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo
from bridge.ids import SessionID
from bridge.session.groups.member_send import GroupSent
from bridge.session.groups.outgoing import PreparedGroupMessage
from bridge.session.groups.store import Membership
from bridge.session.messages import (
    Attachment,
    GroupDeleteMemberContent,
    Message,
    Profile,
    Quote,
    Reaction,
    ReactionAction,
    Unsend,
    VisibleMessage,
)
from bridge.session.snode.errors import SwarmUnavailable, Unauthorized

GROUP = "03" + "c3" * 32
BOT = "05" + "b0" * 32
PEER = "05" + "e1" * 32
ALICE = "@alice:example.test"
EVE = "@eve:example.test"
GHOSTS = re.compile(r"^@session_(?P<session_id>05[0-9a-f]{64}):example\.test$")
TEMPLATE = "{displayname}: {message}"


@dataclass
class FakeGroupsClient:
    """Records what the group swarm would hold. Each ``prepare`` is a new encryption (new
    bytes); storing bytes the swarm already holds adds nothing, as the nodes de-duplicate by
    hash."""

    session_id: SessionID
    member: bool = True
    profile: Profile | None = None
    clock: int = field(default_factory=lambda: int(time.time() * 1000))
    prepared: dict[bytes, Message] = field(default_factory=dict)
    stored: list[bytes] = field(default_factory=list)
    stores: int = 0
    uploads: list[tuple[bytes, str | None, str]] = field(default_factory=list)
    fail: Exception | None = None

    async def membership(self, group: str) -> Membership | None:
        return Membership(group, "g", accepted=True) if self.member else None

    async def prepare(self, group: str, message: Message) -> PreparedGroupMessage:
        self.clock += 1
        data = f"{self.session_id.value[:6]}:{self.clock}".encode()
        self.prepared[data] = message
        return PreparedGroupMessage(group, self.clock, 14 * 86_400_000, data)

    async def send_prepared(self, prepared: PreparedGroupMessage) -> GroupSent:
        self.stores += 1
        if self.fail is not None:
            raise self.fail
        if prepared.data not in self.stored:
            self.stored.append(prepared.data)
        return GroupSent(prepared.timestamp, f"hash-{prepared.timestamp}")

    async def upload_attachment(
        self, data: bytes, filename: str | None, content_type: str, caption: str | None = None
    ) -> Attachment:
        self.uploads.append((data, filename, content_type))
        return Attachment(url="http://files.test/f/1", size=len(data), content_type=content_type)

    @property
    def sent(self) -> list[Message]:
        return [self.prepared[data] for data in self.stored]


class FakeClients:
    def __init__(self) -> None:
        self.by_id: dict[str, FakeGroupsClient] = {}

    def client(self, session_id: str) -> Any:
        return self.by_id.get(session_id)

    def bot_session_id(self) -> str:
        return BOT


class NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class World:
    db: Database
    outbound: GroupOutbound
    clients: FakeClients
    alice: FakeGroupsClient
    bot: FakeGroupsClient
    login: Login
    messages: MessageRepo
    outbox: OutboxRepo
    portals: PortalRepo
    portal: PortalRecord
    relay_ok: set[str]
    downloads: dict[str, bytes]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    await migrate.upgrade_to_head(url)
    db = Database.from_url(url)
    portals, messages, outbox = PortalRepo(db), MessageRepo(db), OutboxRepo(db)
    portal = await portals.get_or_create(PortalKind.GROUP, GROUP)
    portal = await portals.set_mxid(portal.id, "!group:example.test")
    logins = LoginManager(UserRepo(db), SeedVault(bytes(32)))
    login = await logins.create_new(ALICE)
    await logins.load_all()
    clients = FakeClients()
    alice = FakeGroupsClient(SessionID.parse(login.session_id), profile=Profile("Alice S"))
    bot = FakeGroupsClient(SessionID.parse(BOT), profile=Profile("Bridge bot"))
    clients.by_id = {login.session_id: alice, BOT: bot}
    relay_ok = {ALICE, EVE}
    downloads: dict[str, bytes] = {"mxc://example.test/file": b"\x89PNG-bytes"}

    async def download(mxc: str) -> bytes:
        return downloads[mxc]

    async def display_name(room: str, mxid: str) -> str:
        return {ALICE: "Alice", EVE: "Eve"}.get(mxid, mxid)

    actors = GroupActors(
        clients=clients,
        logins=logins,
        portals=portals,
        outbox=outbox,
        cursors=CursorRepo(db),
        may_relay=lambda mxid: mxid in relay_ok,
        relay_template=TEMPLATE,
    )
    lock = lambda portal_id: NoLock()  # noqa: E731
    outbound = GroupOutbound(
        actors=actors,
        relations=GroupRelations(actors=actors, messages=messages, portal_lock=lock),
        messages=messages,
        outbox=outbox,
        ghost_pattern=GHOSTS,
        portal_lock=lock,
        download=download,
        display_name=display_name,
    )
    yield World(
        db,
        outbound,
        clients,
        alice,
        bot,
        login,
        messages,
        outbox,
        portals,
        portal,
        relay_ok,
        downloads,
    )
    await db.close()


_counter = iter(range(10**9))


async def relay_on(world: World) -> PortalRecord:
    return await world.portals.update(dataclasses.replace(world.portal, relay_enabled=True))


def event(kind: str, content: dict[str, Any], sender: str = ALICE, **extra: Any) -> Any:
    raw = {
        "type": kind,
        "event_id": f"$e{next(_counter)}",
        "room_id": "!group:example.test",
        "sender": sender,
        "origin_server_ts": 1,
        "content": content,
        **extra,
    }
    return parse_event(raw)


def text(body: str, sender: str = ALICE, **content: Any) -> Any:
    return event("m.room.message", {"msgtype": "m.text", "body": body, **content}, sender)


async def deliver_all(world: World) -> list[str]:
    """Deliver every due row as the outbox sender would; the kinds delivered, in order."""
    kinds = []
    deliverers = world.outbound.deliverers()
    while rows := await world.outbox.claim_due(10**15, 100):  # a portal's next once done
        for row in rows:
            await deliverers[row.kind](row)
            await world.outbox.mark_done(row.id)
            kinds.append(row.kind)
    return kinds


async def test_a_members_text_is_queued_once_sent_once_and_mapped_by_hash(world: World) -> None:
    msg = text("hello group")
    await world.outbound.handle_message(world.portal, msg, "Alice")
    await world.outbound.handle_message(world.portal, msg, "Alice")  # handled again: no row
    (row,) = await world.outbox.claim_due(10**15, 10)
    assert row.kind == SEND_KIND and row.login_id == world.login.record.id
    await world.outbound.deliver(row)
    (sent,) = world.alice.sent
    assert isinstance(sent, VisibleMessage) and sent.body == "hello group"
    assert sent.profile == Profile("Alice S")
    mapped = await world.messages.get_by_mxid(str(msg.event_id))
    assert mapped is not None
    assert mapped.session_key == f"hash-{world.alice.clock}"  # the storage hash, for deletes
    assert mapped.timestamp == world.alice.clock
    assert mapped.sender_session_id == world.login.session_id and mapped.sender_mxid == ALICE
    # Delivered again after a crash before the row was marked done: nothing more is stored.
    await world.outbound.deliver(row)
    assert world.alice.stores == 1 and world.bot.stores == 0


async def test_a_store_whose_answer_was_lost_is_retried_with_the_same_bytes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = text("once")
    await world.outbound.handle_message(world.portal, msg, "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    world.alice.fail = SwarmUnavailable("no answer")
    with pytest.raises(TemporaryFailure):
        await world.outbound.deliver(row)
    world.alice.fail = None
    retry = await world.outbox.get(row.id)
    assert retry is not None and len(json.loads(retry.payload)["prepared"]) == 1
    await world.outbound.deliver(retry)
    # Two stores of one encryption: the swarm holds one message.
    assert world.alice.stores == 2 and len(world.alice.prepared) == 1
    assert [m.body for m in world.alice.sent if isinstance(m, VisibleMessage)] == ["once"]


async def test_a_crash_between_store_and_mapping_stores_the_same_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = text("crash")
    await world.outbound.handle_message(world.portal, msg, "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    record = world.messages.add_message

    async def crash(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(world.messages, "add_message", record)
        raise ConnectionError("killed after the store")

    monkeypatch.setattr(world.messages, "add_message", crash)
    with pytest.raises(ConnectionError):
        await world.outbound.deliver(row)
    retry = await world.outbox.get(row.id)
    assert retry is not None
    # Its echo, read back by the login's poller before the retry, is known as ours already.
    (kept,) = GroupPayload.from_json(retry.payload).prepared
    assert await CursorRepo(world.db).is_processed(item_key(GROUP, kept.storage_hash))
    await world.outbound.deliver(retry)
    assert len(world.alice.prepared) == 1 and len(world.alice.stored) == 1
    assert await world.messages.get_by_mxid(str(msg.event_id)) is not None


async def test_without_membership_or_login_relay_off_is_refused_with_why(world: World) -> None:
    world.alice.member = False
    with pytest.raises(Refused) as refused:
        await world.outbound.handle_message(world.portal, text("hi"), "Alice")
    assert str(refused.value) == not_member_text("message") and "`relay on`" in str(refused.value)
    with pytest.raises(NoLogin):
        await world.outbound.handle_message(world.portal, text("hi", EVE), "Eve")
    assert await world.outbox.claim_due(10**15, 10) == []


async def test_relay_on_the_bot_posts_name_and_text(world: World) -> None:
    world.portal = await relay_on(world)
    await world.outbound.handle_message(world.portal, text("hi all", EVE), "Eve")
    (row,) = await world.outbox.claim_due(10**15, 10)
    assert row.login_id is None
    await world.outbound.deliver(row)
    (sent,) = world.bot.sent
    assert isinstance(sent, VisibleMessage) and sent.body == "Eve: hi all"
    assert sent.profile == Profile("Bridge bot")
    mapped = await world.messages.get_by_mxid(row.matrix_event_id or "")
    assert mapped is not None and mapped.sender_session_id == BOT and mapped.sender_mxid == EVE


async def test_relay_needs_the_relay_level_and_a_bot_in_the_group(world: World) -> None:
    world.portal = await relay_on(world)
    world.relay_ok.discard(EVE)
    with pytest.raises(NoLogin):
        await world.outbound.handle_message(world.portal, text("hi", EVE), "Eve")
    world.relay_ok.add(EVE)
    world.bot.member = False
    with pytest.raises(Refused, match="bot is not a member"):
        await world.outbound.handle_message(world.portal, text("hi", EVE), "Eve")


async def test_a_member_login_wins_over_relay(world: World) -> None:
    world.portal = await relay_on(world)
    await world.outbound.handle_message(world.portal, text("mine"), "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    assert row.login_id == world.login.record.id


async def test_reply_quotes_the_session_original_and_pills_become_mentions(world: World) -> None:
    await world.messages.add_message(
        world.portal.id, "$from-peer", "h1", timestamp=77, sender_session_id=PEER
    )
    html = (
        f'<a href="https://matrix.to/#/@session_{PEER}:example.test">Peer</a> and '
        f'<a href="https://matrix.to/#/{ALICE}">Alice</a> yes'
    )
    reply = text(
        "Peer and Alice yes",
        format="org.matrix.custom.html",
        formatted_body=html,
        **{"m.relates_to": {"m.in_reply_to": {"event_id": "$from-peer"}}},
    )
    await world.outbound.handle_message(world.portal, reply, "Alice")
    await deliver_all(world)
    (sent,) = world.alice.sent
    assert isinstance(sent, VisibleMessage)
    assert sent.quote == Quote(77, PEER)
    assert sent.body == f"@{PEER} and @{world.login.session_id} yes"


async def test_an_edit_is_a_marked_message_quoting_the_original(world: World) -> None:
    original = text("typo")
    await world.outbound.handle_message(world.portal, original, "Alice")
    await deliver_all(world)
    first = await world.messages.get_by_mxid(str(original.event_id))
    assert first is not None
    edit = text(
        "* fixed",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": str(original.event_id)},
        },
    )
    await world.outbound.handle_message(world.portal, edit, "Alice")
    await deliver_all(world)
    sent = world.alice.sent[-1]
    assert isinstance(sent, VisibleMessage) and sent.body == EDIT_MARK + "fixed"
    assert sent.quote == Quote(first.timestamp, world.login.session_id)
    # Someone else's message cannot be edited.
    await world.messages.add_message(
        world.portal.id, "$peer-msg", "h2", timestamp=5, sender_session_id=PEER
    )
    other = text(
        "* no",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "no"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$peer-msg"},
        },
    )
    with pytest.raises(Refused, match="your own messages"):
        await world.outbound.handle_message(world.portal, other, "Alice")


async def test_reactions_are_added_and_removed(world: World) -> None:
    await world.messages.add_message(
        world.portal.id, "$peer-msg", "h2", timestamp=55, sender_session_id=PEER
    )
    react = event(
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$peer-msg", "key": "👍"}},
    )
    await world.outbound.handle_event(world.portal, react)
    assert await deliver_all(world) == [REACT_KIND]
    assert world.alice.sent == [Reaction(55, PEER, "👍", ReactionAction.REACT)]
    redact = event("m.room.redaction", {}, redacts=str(react.event_id))
    await world.outbound.handle_event(world.portal, redact)
    assert await deliver_all(world) == [UNSEND_KIND]
    assert world.alice.sent[-1] == Reaction(55, PEER, "👍", ReactionAction.REMOVE)
    assert await world.messages.get_reaction_by_mxid(str(react.event_id)) is None


async def test_reactions_on_unbridged_events_are_ignored_and_odd_keys_refused(
    world: World,
) -> None:
    def reaction(target: str, key: str) -> Any:
        relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
        return event("m.reaction", {"m.relates_to": relates})

    await world.messages.add_message(
        world.portal.id, "$peer-msg", "h2", timestamp=55, sender_session_id=PEER
    )
    with pytest.raises(Refused, match="emoji"):
        await world.outbound.handle_event(world.portal, reaction("$peer-msg", "x" * 20))
    assert await world.outbox.claim_due(10**15, 10) == []
    # A reaction on an event not (yet) on Session is resolved at delivery: nothing to send.
    await world.outbound.handle_event(world.portal, reaction("$nowhere", "👍"))
    assert await deliver_all(world) == [REACT_KIND]
    assert world.alice.sent == []


async def test_relayed_reactions_share_the_bots_one_reaction(world: World) -> None:
    world.portal = await relay_on(world)
    world.alice.member = False
    await world.messages.add_message(
        world.portal.id, "$peer-msg", "h2", timestamp=55, sender_session_id=PEER
    )
    relates = {"rel_type": "m.annotation", "event_id": "$peer-msg", "key": "🎉"}
    eve = event("m.reaction", {"m.relates_to": relates}, EVE)
    alice = event("m.reaction", {"m.relates_to": relates}, ALICE)
    await world.outbound.handle_event(world.portal, eve)
    await world.outbound.handle_event(world.portal, alice)
    await deliver_all(world)
    assert world.bot.sent == [Reaction(55, PEER, "🎉", ReactionAction.REACT)]
    # Eve takes hers back: Alice's (relayed) still holds the bot's reaction.
    await world.outbound.handle_event(
        world.portal, event("m.room.redaction", {}, EVE, redacts=str(eve.event_id))
    )
    await deliver_all(world)
    assert len(world.bot.sent) == 1
    # Eve cannot take back Alice's.
    with pytest.raises(Refused, match="person who reacted"):
        await world.outbound.handle_event(
            world.portal, event("m.room.redaction", {}, EVE, redacts=str(alice.event_id))
        )
    await world.outbound.handle_event(
        world.portal, event("m.room.redaction", {}, ALICE, redacts=str(alice.event_id))
    )
    await deliver_all(world)
    assert world.bot.sent[-1] == Reaction(55, PEER, "🎉", ReactionAction.REMOVE)


async def test_redacting_ones_own_message_unsends_it_by_hash(world: World) -> None:
    msg = text("oops")
    await world.outbound.handle_message(world.portal, msg, "Alice")
    await deliver_all(world)
    mapped = await world.messages.get_by_mxid(str(msg.event_id))
    assert mapped is not None and mapped.session_key is not None
    redact = event("m.room.redaction", {}, redacts=str(msg.event_id))
    await world.outbound.handle_event(world.portal, redact)
    assert await deliver_all(world) == [UNSEND_KIND]
    unsend, delete = world.alice.sent[-2:]
    assert unsend == Unsend(mapped.timestamp, world.login.session_id)
    assert delete == GroupDeleteMemberContent(message_hashes=(mapped.session_key,))
    assert await world.messages.get_by_mxid(str(msg.event_id)) is None


async def test_redacting_someone_elses_message_is_refused(world: World) -> None:
    await world.messages.add_message(
        world.portal.id, "$peer-msg", "h2", timestamp=55, sender_session_id=PEER
    )
    redact = event("m.room.redaction", {}, redacts="$peer-msg")
    with pytest.raises(Refused, match="Only the author"):
        await world.outbound.handle_event(world.portal, redact)
    # A redaction of something that never reached Session sends nothing.
    await world.outbound.handle_event(
        world.portal, event("m.room.redaction", {}, redacts="$never")
    )
    assert await deliver_all(world) == [UNSEND_KIND]
    assert world.alice.sent == []


async def test_a_voice_file_is_uploaded_and_posted_as_an_attachment(world: World) -> None:
    content = {
        "msgtype": "m.audio",
        "body": "voice.ogg",
        "url": "mxc://example.test/file",
        "info": {"mimetype": "audio/ogg", "size": 10},
        "org.matrix.msc3245.voice": {},
    }
    await world.outbound.handle_event(world.portal, event("m.room.message", content))
    assert await deliver_all(world) == [SEND_KIND]
    assert world.alice.uploads == [(b"\x89PNG-bytes", "voice.ogg", "audio/ogg")]
    (sent,) = world.alice.sent
    assert isinstance(sent, VisibleMessage)
    (pointer,) = sent.attachments
    assert pointer.url == "http://files.test/f/1" and pointer.is_voice_message


async def test_files_over_the_limit_are_refused_at_once_or_at_delivery(world: World) -> None:
    big = {
        "msgtype": "m.file",
        "body": "big.bin",
        "url": "mxc://example.test/big",
        "info": {"mimetype": "application/octet-stream", "size": 11_000_000},
    }
    with pytest.raises(Refused, match="too large"):
        await world.outbound.handle_event(world.portal, event("m.room.message", big))
    world.downloads["mxc://example.test/big"] = bytes(10 * 1024 * 1024 + 1)
    unannounced = {**big, "info": {"mimetype": "application/octet-stream"}}
    await world.outbound.handle_event(world.portal, event("m.room.message", unannounced))
    (row,) = await world.outbox.claim_due(10**15, 10)
    with pytest.raises(PermanentFailure, match="too large"):
        await world.outbound.deliver(row)
    assert world.alice.uploads == []


async def test_relayed_files_carry_the_senders_name(world: World) -> None:
    world.portal = await relay_on(world)
    content = {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": "mxc://example.test/file",
        "info": {"mimetype": "image/png", "size": 10, "w": 4, "h": 3},
    }
    await world.outbound.handle_event(world.portal, event("m.room.message", content, EVE))
    await deliver_all(world)
    (sent,) = world.bot.sent
    assert isinstance(sent, VisibleMessage) and sent.body == "Eve: cat.png"
    assert (sent.attachments[0].width, sent.attachments[0].height) == (4, 3)


async def test_delivery_failures_are_classified(world: World) -> None:
    await world.outbound.handle_message(world.portal, text("x"), "Alice")
    (row,) = await world.outbox.claim_due(10**15, 10)
    world.alice.fail = Unauthorized("revoked", status=401)
    with pytest.raises(PermanentFailure, match="no longer accepts"):
        await world.outbound.deliver(row)
    world.alice.fail = None
    world.alice.member = False
    with pytest.raises(PermanentFailure, match="no longer a member"):
        await world.outbound.deliver(row)
    del world.clients.by_id[world.login.session_id]
    with pytest.raises(TemporaryFailure, match="not running"):
        await world.outbound.deliver(row)
    await world.portals.mark_unbridged(world.portal.id)
    with pytest.raises(PermanentFailure, match="no longer bridged"):
        await world.outbound.deliver(row)


async def test_call_group_maps_swarm_errors() -> None:
    async def raise_(error: Exception) -> None:
        raise error

    with pytest.raises(TemporaryFailure):
        await call_group(raise_(SwarmUnavailable("down")))
    with pytest.raises(PermanentFailure):
        await call_group(raise_(Unauthorized("401", status=401)))


async def test_payload_round_trip_with_kept_messages() -> None:
    payload = GroupPayload.from_json(
        json.dumps(
            {
                "op": "text",
                "text": "t",
                "quote": {"timestamp": 1, "author": PEER},
                "sender": ALICE,
                "name": "Alice",
            }
        )
    )
    kept = payload.with_prepared((PreparedGroupMessage(GROUP, 5, 10, b"\x00\x01"),))
    assert GroupPayload.from_json(kept.to_json()) == kept
    assert cast(Any, kept.op).quote == Quote(1, PEER)


async def test_relations_on_messages_still_queued_are_resolved_at_delivery(world: World) -> None:
    # Nothing is delivered between these events: each target is still in the outbox.
    msg = text("first")
    sent_at = world.alice.clock + 1  # the first message the fake client prepares
    await world.outbound.handle_message(world.portal, msg, "Alice")
    relates = {"rel_type": "m.annotation", "event_id": str(msg.event_id), "key": "🙂"}
    react = event("m.reaction", {"m.relates_to": relates})
    await world.outbound.handle_event(world.portal, react)
    await world.outbound.handle_event(
        world.portal, event("m.room.redaction", {}, redacts=str(react.event_id))
    )
    edit = text(
        "* second",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "second"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": str(msg.event_id)},
        },
    )
    await world.outbound.handle_message(world.portal, edit, "Alice")
    await world.outbound.handle_event(
        world.portal, event("m.room.redaction", {}, redacts=str(msg.event_id))
    )
    assert await deliver_all(world) == [SEND_KIND, REACT_KIND, UNSEND_KIND, SEND_KIND, UNSEND_KIND]
    me = world.login.session_id
    first, react_msg, unreact, edited, unsend, delete = world.alice.sent
    assert isinstance(first, VisibleMessage) and isinstance(edited, VisibleMessage)
    assert react_msg == Reaction(sent_at, me, "🙂", ReactionAction.REACT)
    assert unreact == Reaction(sent_at, me, "🙂", ReactionAction.REMOVE)
    assert edited.body == EDIT_MARK + "second" and edited.quote == Quote(sent_at, me)
    assert unsend == Unsend(sent_at, me)
    assert delete == GroupDeleteMemberContent(message_hashes=(f"hash-{sent_at}",))


async def test_an_edit_of_someone_elses_queued_message_fails_at_delivery(world: World) -> None:
    world.portal = await relay_on(world)
    msg = text("eve's", EVE)
    await world.outbound.handle_message(world.portal, msg, "Eve")
    edit = text(
        "* alice's",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "alice's"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": str(msg.event_id)},
        },
    )
    await world.outbound.handle_message(world.portal, edit, "Alice")
    deliverers = world.outbound.deliverers()
    (first,) = await world.outbox.claim_due(10**15, 10)
    await deliverers[first.kind](first)
    await world.outbox.mark_done(first.id)
    (second,) = await world.outbox.claim_due(10**15, 10)
    with pytest.raises(PermanentFailure, match="your own messages"):
        await deliverers[second.kind](second)
    assert len(world.alice.sent) == 0 and len(world.bot.sent) == 1


async def test_other_message_kinds_are_refused_with_why(world: World) -> None:
    notice = event("m.room.message", {"msgtype": "m.notice", "body": "beep"})
    with pytest.raises(Refused, match="This kind of message"):
        await world.outbound.handle_event(world.portal, notice)
    assert await world.outbox.claim_due(10**15, 10) == []
