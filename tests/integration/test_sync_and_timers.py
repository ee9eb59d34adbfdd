"""A login behaves like a Session app (issue #12): disappearing timers applied on the way out,
sync copies for the user's phone, and every stored message accepted by the receiving-apps
model (tests/appmodel.py). Real Synapse, real PostgreSQL/SQLite, the devnet's storage nodes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, MessageType, RoomID, TextMessageEventContent

from bridge.core.logins import Login
from bridge.session.dm_events import decode_inbox_message
from bridge.session.keys import Identity
from bridge.session.messages import (
    Expiry,
    ExpiryMode,
    Reaction,
    Unsend,
    VisibleMessage,
)
from bridge.session.onetoone import MessageKeys
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.calls import DEFAULT_TTL_MS
from bridge.session.snode.results import RetrievedMessage
from bridge.session.userconfig import views
from tests.appmodel import ContactEntry, SessionApp
from tests.integration.conftest import DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import matrix_event
from tests.sessionnet.dm_setup import Inbox

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 15.0
HOUR_S = 3600


def body_is(text: str) -> Any:
    def match(event: Any) -> bool:
        return str(event.type) == "m.room.message" and getattr(event.content, "body", None) == text

    return match


def body_has(text: str) -> Any:
    def match(event: Any) -> bool:
        body = getattr(event.content, "body", "") or ""
        return str(event.type) == "m.room.message" and text in body.lower()

    return match


async def session_gets(inbox: Inbox, what: str, match: Any) -> Any:
    async def find() -> Any:
        return next((e for e in inbox.messages if match(e)), None)

    return await wait_for(find, f"Session to get {what}", TIMEOUT)


async def joined_portal(env: DmEnv, user: Client, ours: str, peer: str) -> RoomID:
    room_id = await env.portal_room(ours, peer)

    async def join() -> bool:
        try:
            await user.join_room(room_id)
        except Exception:  # the invite may not be there yet
            return False
        return True

    await wait_for(join, "the owner to join the portal", TIMEOUT)
    return room_id


async def stored(env: DmEnv, identity: Identity, namespace: int = 0) -> list[RetrievedMessage]:
    """Everything the devnet holds for ``identity`` in ``namespace`` (one node's view)."""
    signer = Ed25519Signer.from_seed(identity.ed25519_seed)
    found: list[RetrievedMessage] = []
    last: str | None = None
    while True:
        page = await env.world.snode.retrieve(signer, namespace=namespace, last_hash=last)
        found.extend(page.messages)
        if not page.more or not page.messages:
            return found
        last = page.messages[-1].hash


async def test_one_hour_timer_applied_and_the_phone_gets_the_reply(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    phone_inbox = Inbox()
    phone = await dm_env.world.client(login.identity, inbox=phone_inbox)  # the user's phone
    sam_identity = Identity.generate()
    sam_inbox = Inbox()
    sam = await dm_env.world.client(sam_identity, inbox=sam_inbox)
    sam_id = sam.session_id.value

    await sam.send_text(ours, "hi")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    await matrix_event(alice, room_id, "Sam's first message", body_is("hi"))
    # Sam turns on a 1-hour delete-after-send timer, then writes under it.
    await sam.send_prepared(sam.prepare_disappearing(ours, ExpiryMode.DELETE_AFTER_SEND, HOUR_S))
    sam.expiry_for = {ours: Expiry(ExpiryMode.DELETE_AFTER_SEND, HOUR_S)}.get
    first = await sam.send_text(ours, "this disappears")
    notice = await matrix_event(alice, room_id, "the timer notice", body_has("disappearing"))
    assert "1 hour after sending" in notice.content.body

    async def topic() -> str | None:
        try:
            content = await alice.get_state_event(room_id, EventType.ROOM_TOPIC)
        except MatrixRequestError:
            return None
        return str(getattr(content, "topic", "")) or None

    shown = await wait_for(topic, "the setting in the topic", TIMEOUT)
    assert shown == "Disappearing messages set to 1 hour after sending"
    hello = await matrix_event(alice, room_id, "Sam's message", body_is("this disappears"))

    reply = TextMessageEventContent(msgtype=MessageType.TEXT, body="noted, it goes in 1 h")
    reply.set_reply(hello.event_id)
    await alice.send_message(room_id, reply)

    def is_reply(event: Any) -> bool:
        return getattr(event.content, "body", None) == "noted, it goes in 1 h"

    got = await session_gets(sam_inbox, "the reply", is_reply)
    # The next message carries the type and the timer ...
    assert got.content.expiry == Expiry(ExpiryMode.DELETE_AFTER_SEND, HOUR_S)
    assert got.content.quote is not None and got.content.quote.timestamp == first.timestamp
    # ... and is stored on the devnet with a 1-hour TTL (the node's expiry = sent time + 1 h).
    held = {m.hash: m for m in await stored(dm_env, sam_identity)}
    assert held[got.hash].expiry - got.timestamp == HOUR_S * 1000

    # The phone (a second client of the login's account) gets the sync copy of the reply.
    copy = await session_gets(phone_inbox, "the sync copy", is_reply)
    assert copy.is_sync and copy.conversation is not None and copy.conversation.value == sam_id
    assert copy.timestamp == got.timestamp and copy.content.sync_target == sam_id
    assert copy.content.expiry == Expiry(ExpiryMode.DELETE_AFTER_SEND, HOUR_S)
    assert copy.content.profile is None  # the profile stays out of the copy
    own = {m.hash: m for m in await stored(dm_env, login.identity)}
    assert own[copy.hash].expiry - copy.timestamp == HOUR_S * 1000
    # Our own copy coming back is not bridged a second time: after a later message from Sam
    # (read after the copy in the login's swarm), the room still holds the reply once.
    await sam.send_text(ours, "later")
    await matrix_event(alice, room_id, "Sam's later message", body_is("later"))
    bodies = [getattr(e.content, "body", None) for e in await room_events(alice, str(room_id))]
    assert bodies.count("noted, it goes in 1 h") == 1
    await phone.stop()


def decoded(identity: Identity, messages: list[RetrievedMessage]) -> list[tuple[str, int, Any]]:
    keys = MessageKeys.from_seed(identity.ed25519_seed)
    out = []
    for message in messages:
        got = decode_inbox_message(keys, message.data)  # every stored message decodes
        out.append((got.sender_session_id, got.timestamp, got.content))
    return out


def phone_of(env: DmEnv, login: Login, config_times: list[int]) -> SessionApp:
    """The login's own device as the model sees it, with the account's Contacts config as
    the bridge wrote it (when user configs run)."""
    phone = SessionApp(login.session_id, "desktop")
    accounts = env.app._direct.accounts if env.app._direct is not None else None
    configs = accounts.configs.get(login.session_id) if accounts and accounts.configs else None
    if configs is not None:
        contacts = {
            sid: ContactEntry(c.approved, c.blocked, c.priority < 0)
            for sid, c in configs.contacts().items()
        }
        phone.set_contacts(contacts, max(config_times, default=0))
    return phone


async def test_every_message_the_logins_stored_is_accepted_by_the_apps(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice, bob = await matrix_users.new("alice"), await matrix_users.new("bob")
    logins = [
        await dm_env.app.logins.create_new(str(alice.mxid)),
        await dm_env.app.logins.create_new(str(bob.mxid)),
    ]
    peers = [Identity.generate(), Identity.generate()]
    inboxes = [Inbox(), Inbox()]
    clients = [await dm_env.world.client(p, inbox=i) for p, i in zip(peers, inboxes, strict=True)]
    users = [alice, bob]
    rooms: dict[tuple[int, int], RoomID] = {}
    firsts: dict[tuple[int, int], Any] = {}
    for li, login in enumerate(logins):
        for pi, client in enumerate(clients):
            text = f"hello {li}{pi}"
            await client.send_text(login.session_id, text)
            room = await joined_portal(
                dm_env, users[li], login.session_id, peers[pi].session_id.value
            )
            rooms[(li, pi)] = room
            firsts[(li, pi)] = await matrix_event(users[li], room, text, body_is(text))

    # Both logins write to both Session users at once: one burst, the same millisecond window.
    sent = await asyncio.gather(
        *(users[li].send_text(rooms[(li, pi)], f"burst {li}{pi}") for (li, pi) in rooms)
    )
    for (li, pi), first in firsts.items():
        reply = TextMessageEventContent(msgtype=MessageType.TEXT, body=f"reply {li}{pi}")
        reply.set_reply(first.event_id)
        await users[li].send_message(rooms[(li, pi)], reply)
        await users[li].react(rooms[(li, pi)], first.event_id, "👍")
    for (li, pi), event_id in zip(rooms, sent, strict=True):
        await users[li].redact(rooms[(li, pi)], event_id)

    for pi, inbox in enumerate(inboxes):

        async def complete(inbox: Inbox = inbox) -> bool:
            kinds = [type(e.content) for e in inbox.messages]
            return kinds.count(Unsend) == 2 and kinds.count(Reaction) == 2

        await wait_for(complete, f"Session user {pi} to get everything", TIMEOUT)

    # The Session users' devices, Android and desktop, accept everything the bridge stored.
    all_sent_times: list[int] = []
    for pi, peer in enumerate(peers):
        received = decoded(peer, await stored(dm_env, peer))
        ours = {login.session_id for login in logins}
        assert {sender for sender, _, _ in received} == ours
        for platform in ("android", "desktop"):
            app = SessionApp(peer.session_id.value, platform)  # type: ignore[arg-type]
            for sender, timestamp, content in received:
                verdict = app.receive_dm(sender, timestamp, content)
                assert verdict, f"{platform} of peer {pi} drops {content!r}: {verdict.reason}"
        all_sent_times.extend(t for _, t, _ in received)
    assert len(all_sent_times) == len(set(all_sent_times))  # no two share a timestamp

    # The logins' own devices (the phones) accept the sync copies, against their Contacts.
    for login in logins:
        times = [m.timestamp for m in await stored(dm_env, login.identity, views.CONTACTS)]
        phone = phone_of(dm_env, login, times)
        # The rule against Contacts really applies: a config newer than the copies lists both.
        assert phone.contacts is not None and times
        assert all(phone.contacts[p.session_id.value].approved for p in peers)
        own = decoded(login.identity, await stored(dm_env, login.identity))
        copies = [c for s, _, c in own if s == login.session_id]
        assert sum(isinstance(c, VisibleMessage) for c in copies) >= 2  # replies (bursts unsent)
        assert sum(isinstance(c, Reaction) for c in copies) == 2
        assert sum(isinstance(c, Unsend) for c in copies) == 2
        for sender, timestamp, content in own:
            verdict = phone.receive_dm(sender, timestamp, content)
            assert verdict, (
                f"the phone of {login.session_id[:8]} drops {content!r}: {verdict.reason}"
            )


async def test_delete_after_read_shortens_what_was_read(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    sam_inbox = Inbox()
    sam = await dm_env.world.client(inbox=sam_inbox)
    sam_id = sam.session_id.value
    await sam.send_text(ours, "hi")
    room_id = await joined_portal(dm_env, alice, ours, sam_id)
    await matrix_event(alice, room_id, "Sam's first message", body_is("hi"))
    after_read = Expiry(ExpiryMode.DELETE_AFTER_READ, 60)
    sam.expiry_for = {ours: after_read}.get
    read_me = await sam.send_text(ours, "read me")  # the setting comes with the message
    hello = await matrix_event(alice, room_id, "Sam's message", body_is("read me"))
    notice = await matrix_event(alice, room_id, "the timer notice", body_has("disappearing"))
    assert "1 minute after reading" in notice.content.body

    async def expiry_in_own_swarm(hash_: str) -> int | None:
        held = {m.hash: m for m in await stored(dm_env, login.identity)}
        return held[hash_].expiry if hash_ in held else None

    # Alice reads Sam's message on Matrix: our stored copy of it now expires in a minute.
    initial = await expiry_in_own_swarm(read_me.hash)
    assert initial is not None and initial - read_me.timestamp == DEFAULT_TTL_MS
    await alice.send_receipt(room_id, hello.event_id)

    async def shortened(hash_: str, timestamp: int) -> bool:
        expiry = await expiry_in_own_swarm(hash_)
        return expiry is not None and expiry - timestamp < HOUR_S * 1000

    await wait_for(
        lambda: shortened(read_me.hash, read_me.timestamp), "the read message cut", TIMEOUT
    )

    # Alice answers: the setting rides along, with the initial TTL of 14 days ...
    await alice.send_text(room_id, "seen")

    def is_answer(event: Any) -> bool:
        return getattr(event.content, "body", None) == "seen"

    answer = await session_gets(sam_inbox, "the answer", is_answer)
    assert answer.content.expiry == after_read
    own = await stored(dm_env, login.identity)
    keys = MessageKeys.from_seed(login.identity.ed25519_seed)
    copy = next(
        m
        for m in own
        if m.timestamp == answer.timestamp
        and decode_inbox_message(keys, m.data).sender_session_id == ours
    )
    assert copy.expiry - answer.timestamp == DEFAULT_TTL_MS
    # ... and once Sam's read receipt arrives, our sync copy (the phone's) is cut as well.
    await sam.send_read_receipt(ours, [answer.timestamp])
    await wait_for(lambda: shortened(copy.hash, answer.timestamp), "the read copy cut", TIMEOUT)
