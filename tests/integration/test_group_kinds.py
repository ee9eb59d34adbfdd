"""Every message kind of a group portal both ways, and the group commands, end to end: one
bridge in process for the whole module (real Synapse, real PostgreSQL), the devnet's group
swarms, the devnet's test admin and independent member clients (the project's GroupsClient
under other identities) on the Session side.

The module shares one bridge and one group portal ("Kinds": an admin, Bob on the devnet, and
Alice's login, whose owner is in the room) to keep its run short; every test adds its own
messages and looks only at those. Tests that need a group of their own (the bot's invites,
``unbridge``) make one. The restart test runs last: it replaces the module's bridge.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mautrix.client import Client
from mautrix.types import (
    EventType,
    FileInfo,
    Format,
    ImageInfo,
    MediaMessageEventContent,
    MessageType,
    RoomID,
    TextMessageEventContent,
    UserID,
)

from bridge.app import BridgeApp
from bridge.config import load_config
from bridge.core.group.members import ADMIN_LEVEL
from bridge.core.logins import Login
from bridge.db.records import PortalKind
from bridge.ids import SessionID
from bridge.session.dm_media import upload_avatar
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupMessageEvent,
    GroupReactionEvent,
    GroupUnsendEvent,
)
from bridge.session.groups.info import Picture
from bridge.session.messages import ReactionAction, VisibleMessage
from bridge.session.messages.model import VOICE_MESSAGE_FLAG
from tests.images import tiny_png
from tests.integration.conftest import (
    DmEnv,
    MatrixUsers,
    _admin,
    messages_from,
    require_env,
    room_events,
    use_devnet,
    wait_for,
)
from tests.integration.helpers import (
    bot_says,
    is_redacted,
    matrix_event,
    matrix_sees,
    open_management_room,
)
from tests.integration.test_group_outbound import (
    _accepted,
    _from,
    _member_joins,
    _portal_joined,
    _running,
)
from tests.integration.test_group_portals import admin_with_inbox, told
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import Member, new_admin, new_member

pytestmark = [
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]
TIMEOUT = 30.0
BIG = 20_000_000  # 20.0 MB, over Session's 10 MB attachment limit
DEADLINE = "2027-01-31"


# --- the module's bridge and shared group ---------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[DmEnv]:
    """One bridge on its own PostgreSQL database (dropped at the end) and one devnet."""
    server = require_env("SMB_TEST_POSTGRES_URL")
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    config = load_config(Path(require_env("SMB_TEST_CONFIG")))
    config.database.url = server.rsplit("/", 1)[0] + "/" + name
    try:
        async with dm_world(seed_http=True) as world:
            use_devnet(config, world)
            config.bridge.permissions = {"localhost": "user"}
            app = BridgeApp(config)
            await app.start()
            holder = DmEnv(app, world)
            try:
                yield holder
            finally:
                await holder.app.stop()
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def users() -> AsyncIterator[MatrixUsers]:
    found = MatrixUsers(require_env("SMB_TEST_SYNAPSE_URL"), require_env("SMB_TEST_SHARED_SECRET"))
    yield found
    await found.close()


@dataclass
class Kinds:
    """The shared group portal: Alice (a login, in the room), the admin, and Bob."""

    alice: Client
    login: Login
    admin: DevnetGroupAdmin
    bob: Member
    room_id: RoomID

    @property
    def group(self) -> str:
        return self.admin.group_id.value

    @property
    def ours(self) -> str:
        return self.login.session_id

    @property
    def bob_sid(self) -> str:
        return self.bob.identity.session_id.value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kinds(env: DmEnv, users: MatrixUsers) -> AsyncIterator[Kinds]:
    alice = await users.new("alice")
    login = await env.app.logins.create_new(str(alice.mxid))
    admin = await new_admin(env.world, "Kinds")
    bob = await new_member(env.world, "Bob")
    try:
        await _member_joins(admin, bob, "Bob")
        await _running(env, login.session_id)
        await admin.invite(login.identity.session_id, "Alice")
        room_id = await _portal_joined(env, alice, admin.group_id.value)
        await _accepted(env, login.session_id, admin.group_id.value)
        yield Kinds(alice, login, admin, bob, room_id)
    finally:
        await bob.groups.stop()


def ghost(env: DmEnv, session_id: str) -> str:
    return env.app.ghosts.mxid_for(session_id)


def body_is(text: str) -> Any:
    def match(event: Any) -> bool:
        return str(event.type) == "m.room.message" and getattr(event.content, "body", None) == text

    return match


async def seen_by_bob(k: Kinds, what: str, pick: Any) -> list[Any]:
    """What Bob received from Alice's login that ``pick`` selects, once there is some."""

    async def found() -> list[Any]:
        return [e for e in _from(k.bob, k.ours) if pick(e)]

    return await wait_for(found, what, TIMEOUT)


def bob_body(text: str) -> Any:
    def pick(e: Any) -> bool:
        return isinstance(e, GroupMessageEvent) and e.content.body == text

    return pick


# --- Session → Matrix -------------------------------------------------------------------------


async def test_attachments_of_every_kind_and_the_size_limit(env: DmEnv, kinds: Kinds) -> None:
    k, bob = kinds, kinds.bob
    png = tiny_png()
    await bob.groups.send_attachment(k.group, png, "pixel.png", "image/png")
    await bob.groups.send_attachment(k.group, b"%PDF-1.4 notes", "notes.pdf", "application/pdf")
    voice = await bob.dm.upload_attachment(b"OggS voice bytes", "voice.ogg", "audio/ogg")
    voice = dataclasses.replace(voice, flags=VOICE_MESSAGE_FLAG)
    await bob.groups.send_text(k.group, None, attachments=(voice,))
    await bob.groups.send_attachment(k.group, b"\x00\x00\x00\x18ftypmp42", "clip.mp4", "video/mp4")
    big = await bob.dm.upload_attachment(b"not really big", "huge.bin", "application/zip")
    await bob.groups.send_text(k.group, None, attachments=(dataclasses.replace(big, size=BIG),))

    def media(msgtype: str) -> Any:
        def match(e: Any) -> bool:
            return str(e.type) == "m.room.message" and str(e.content.msgtype) == msgtype

        return match

    image = await matrix_event(k.alice, k.room_id, "the image", media("m.image"))
    assert str(image.sender) == ghost(env, k.bob_sid)
    assert await k.alice.download_media(image.content.url) == png
    file = await matrix_event(k.alice, k.room_id, "the file", media("m.file"))
    assert file.content.body == "notes.pdf"
    assert await k.alice.download_media(file.content.url) == b"%PDF-1.4 notes"
    audio = await matrix_event(k.alice, k.room_id, "the voice message", media("m.audio"))
    assert "org.matrix.msc3245.voice" in audio.content.serialize()
    assert await k.alice.download_media(audio.content.url) == b"OggS voice bytes"
    video = await matrix_event(k.alice, k.room_id, "the video", media("m.video"))
    assert video.content.body == "clip.mp4"
    notice = await matrix_sees(k.alice, k.room_id, r"^A file \(huge.bin\) was sent")
    assert "too large (20.0 MB)" in notice.content.body
    assert str(notice.content.msgtype) == "m.notice"


async def test_mentions_of_ids_become_pills(env: DmEnv, kinds: Kinds) -> None:
    k = kinds
    admin_sid = k.admin.identity.session_id.value
    await k.bob.groups.send_text(k.group, f"hi @{k.ours} and @{admin_sid}, see you")
    event = await matrix_sees(k.alice, k.room_id, "see you$")
    formatted = str(event.content.formatted_body)
    # The login's mention names its Matrix owner; the admin's, the admin's ghost.
    assert f"https://matrix.to/#/{k.alice.mxid}" in formatted
    assert f"https://matrix.to/#/{ghost(env, admin_sid)}" in formatted
    assert f"@{k.ours}" not in str(event.content.body)  # names, not raw ids
    mentioned = event.content.serialize()["m.mentions"]["user_ids"]
    assert str(k.alice.mxid) in mentioned


async def test_a_reaction_and_its_removal(env: DmEnv, kinds: Kinds) -> None:
    k = kinds
    sent = await k.bob.groups.send_text(k.group, "react to me")
    target = await matrix_event(k.alice, k.room_id, "the message", body_is("react to me"))
    await k.bob.groups.send_reaction(k.group, k.bob_sid, sent.timestamp, "🎉")

    def is_party(e: Any) -> bool:
        return str(e.type) == "m.reaction" and e.content.relates_to.key == "🎉"

    reaction = await matrix_event(k.alice, k.room_id, "the reaction", is_party)
    assert str(reaction.content.relates_to.event_id) == str(target.event_id)
    assert str(reaction.sender) == ghost(env, k.bob_sid)
    await k.bob.groups.send_reaction(k.group, k.bob_sid, sent.timestamp, "🎉", remove=True)

    async def gone() -> bool:
        return await is_redacted(k.alice, k.room_id, str(reaction.event_id))

    await wait_for(gone, "the reaction taken back", TIMEOUT)


async def test_a_member_deletes_their_own_message(kinds: Kinds) -> None:
    k = kinds
    sent = await k.bob.groups.send_text(k.group, "oops, wrong group")
    event = await matrix_event(k.alice, k.room_id, "the message", body_is("oops, wrong group"))
    await k.bob.groups.unsend(k.group, sent.timestamp, sent.hash)

    async def gone() -> bool:
        return await is_redacted(k.alice, k.room_id, str(event.event_id))

    await wait_for(gone, "the message deleted", TIMEOUT)


async def test_an_admin_deletes_another_members_message(kinds: Kinds) -> None:
    k = kinds
    sent = await k.bob.groups.send_text(k.group, "buy cheap watches")
    event = await matrix_event(k.alice, k.room_id, "the spam", body_is("buy cheap watches"))
    await k.admin.delete_member_content(hashes=[sent.hash])

    async def gone() -> bool:
        return await is_redacted(k.alice, k.room_id, str(event.event_id))

    await wait_for(gone, "the spam deleted by the admin", TIMEOUT)


async def topic_of(alice: Client, room_id: RoomID) -> str:
    try:
        state = await alice.get_state_event(room_id, EventType.ROOM_TOPIC)
    except Exception:
        return ""
    return str(state.topic or "")


async def test_description_and_disappearing_setting_become_the_topic(kinds: Kinds) -> None:
    k, admin = kinds, kinds.admin
    admin.info = dataclasses.replace(admin.info, description="Every kind of message")
    await admin.push()

    async def described() -> bool:
        return await topic_of(k.alice, k.room_id) == "Every kind of message"

    await wait_for(described, "the description as the topic", TIMEOUT)
    admin.info = dataclasses.replace(admin.info, disappearing_timer=86400)
    await admin.push()

    async def timer_shown() -> bool:
        topic = await topic_of(k.alice, k.room_id)
        return topic.startswith("Every kind of message\n\n") and "1 day after sending" in topic

    await wait_for(timer_shown, "the disappearing setting in the topic", TIMEOUT)
    admin.info = dataclasses.replace(admin.info, disappearing_timer=None)  # off again
    await admin.push()
    await wait_for(described, "the setting gone from the topic", TIMEOUT)


async def test_the_group_picture_becomes_the_room_avatar(env: DmEnv, kinds: Kinds) -> None:
    k = kinds
    png = tiny_png()
    url, key = await upload_avatar(env.world.files, png)
    k.admin.info = dataclasses.replace(k.admin.info, picture=Picture(url, key))
    await k.admin.push()

    async def avatar() -> str | None:
        try:
            state = await k.alice.get_state_event(k.room_id, EventType.ROOM_AVATAR)
        except Exception:
            return None
        return str(state.url) if state.url else None

    mxc = await wait_for(avatar, "the room avatar", TIMEOUT)
    assert await k.alice.download_media(mxc) == png  # type: ignore[arg-type]


# --- Matrix → Session -------------------------------------------------------------------------


async def test_a_pill_reaches_session_as_an_id(env: DmEnv, kinds: Kinds) -> None:
    k = kinds
    bob_ghost = ghost(env, k.bob_sid)
    content = TextMessageEventContent(
        msgtype=MessageType.TEXT,
        body="Bob: lunch?",
        format=Format.HTML,
        formatted_body=f'<a href="https://matrix.to/#/{bob_ghost}">Bob</a>: lunch?',
    )
    await k.alice.send_message(k.room_id, content)

    def pick(e: Any) -> bool:
        return isinstance(e, GroupMessageEvent) and "lunch?" in (e.content.body or "")

    (message,) = await seen_by_bob(k, "Bob to get the mention", pick)
    assert message.content.body == f"@{k.bob_sid}: lunch?"


async def test_a_reply_reaches_session_as_a_quote(kinds: Kinds) -> None:
    k = kinds
    question = await k.bob.groups.send_text(k.group, "tea or coffee?")
    asked = await matrix_event(k.alice, k.room_id, "the question", body_is("tea or coffee?"))
    reply = TextMessageEventContent(msgtype=MessageType.TEXT, body="tea")
    reply.set_reply(asked)
    await k.alice.send_message(k.room_id, reply)
    (message,) = await seen_by_bob(k, "Bob to get the reply", bob_body("tea"))
    assert message.content.quote is not None
    assert message.content.quote.timestamp == question.timestamp
    assert message.content.quote.author == k.bob_sid


async def test_a_reaction_and_its_removal_reach_session(kinds: Kinds) -> None:
    k = kinds
    sent = await k.bob.groups.send_text(k.group, "vote here")
    target = await matrix_event(k.alice, k.room_id, "the vote", body_is("vote here"))
    reaction = await k.alice.react(k.room_id, target.event_id, "🗳️")

    def pick(e: Any) -> bool:
        return isinstance(e, GroupReactionEvent) and e.reaction.emoji == "🗳️"

    (added,) = await seen_by_bob(k, "Bob to get the reaction", pick)
    assert added.reaction.action == ReactionAction.REACT
    assert added.reaction.target_timestamp == sent.timestamp
    assert added.reaction.target_author == k.bob_sid
    await k.alice.redact(k.room_id, reaction)

    async def removed() -> list[Any]:
        got = [e for e in _from(k.bob, k.ours) if pick(e)]
        return got if len(got) == 2 else []

    _, taken_back = await wait_for(removed, "Bob to see the reaction removed", TIMEOUT)
    assert taken_back.reaction.action == ReactionAction.REMOVE


async def test_a_redaction_deletes_by_storage_hash(kinds: Kinds) -> None:
    k = kinds
    event_id = await k.alice.send_text(k.room_id, "delete me later")
    (message,) = await seen_by_bob(k, "Bob to get the message", bob_body("delete me later"))
    await k.alice.redact(k.room_id, event_id)

    def pick(e: Any) -> bool:
        if isinstance(e, GroupContentDeletedEvent):
            return message.hash in e.message_hashes
        return isinstance(e, GroupUnsendEvent) and e.target_timestamp == message.timestamp

    async def both() -> list[Any]:
        got = [e for e in _from(k.bob, k.ours) if pick(e)]
        return got if len(got) == 2 else []

    unsend, deleted = await wait_for(both, "Bob to see the deletion", TIMEOUT)
    assert isinstance(unsend, GroupUnsendEvent)
    assert isinstance(deleted, GroupContentDeletedEvent)
    assert deleted.message_hashes == (message.hash,)  # the storage hash the bridge kept
    assert not deleted.by_admin


async def test_an_edit_reaches_session(kinds: Kinds) -> None:
    k = kinds
    first = await k.alice.send_text(k.room_id, "meet at 5")
    (original,) = await seen_by_bob(k, "Bob to get the message", bob_body("meet at 5"))
    edit = {
        "msgtype": "m.text",
        "body": "* meet at 6",
        "m.new_content": {"msgtype": "m.text", "body": "meet at 6"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": str(first)},
    }
    await k.alice.send_message_event(k.room_id, EventType.ROOM_MESSAGE, edit)
    (edited,) = await seen_by_bob(k, "Bob to get the edit", bob_body("✏️ meet at 6"))
    assert edited.content.quote is not None
    assert edited.content.quote.timestamp == original.timestamp


async def test_an_attachment_reaches_session_and_a_too_big_one_is_refused(
    env: DmEnv, kinds: Kinds
) -> None:
    k = kinds
    png = tiny_png()
    mxc = await k.alice.upload_media(png, mime_type="image/png", filename="photo.png")
    image = MediaMessageEventContent(
        msgtype=MessageType.IMAGE,
        body="photo.png",
        url=mxc,
        info=ImageInfo(mimetype="image/png", size=len(png)),
    )
    await k.alice.send_message(k.room_id, image)

    def with_file(e: Any) -> bool:
        return isinstance(e, GroupMessageEvent) and any(
            a.file_name == "photo.png" for a in e.content.attachments
        )

    (message,) = await seen_by_bob(k, "Bob to get the image", with_file)
    (pointer,) = message.content.attachments
    assert await k.bob.dm.download_attachment(pointer) == png
    huge = MediaMessageEventContent(
        msgtype=MessageType.FILE,
        body="backup.zip",
        url=mxc,
        info=FileInfo(mimetype="application/zip", size=BIG),
    )
    await k.alice.send_message(k.room_id, huge)
    bot = env.app.config.bot_mxid
    refusal = await bot_says(k.alice, k.room_id, bot, "too large for Session", TIMEOUT)
    assert "20" in refusal
    assert "backup.zip" not in k.bob.inbox.bodies()


# --- sync -------------------------------------------------------------------------------------


async def test_sync_sets_members_levels_and_info_again(env: DmEnv, kinds: Kinds) -> None:
    k, app = kinds, env.app
    bot = app.appservice.intent
    admin_ghost = ghost(env, k.admin.identity.session_id.value)
    bob_ghost = ghost(env, k.bob_sid)

    async def in_step() -> bool:
        levels = await k.alice.get_state_event(k.room_id, EventType.ROOM_POWER_LEVELS)
        members = await k.alice.get_joined_members(k.room_id)
        return UserID(bob_ghost) in members and (
            levels.get_user_level(UserID(admin_ghost)) == ADMIN_LEVEL
        )

    await wait_for(in_step, "the room in step with the group", TIMEOUT)
    # The room drifted from the group: Bob's ghost left, the admin lost their level, the
    # room got another name.
    await bot.user(UserID(bob_ghost)).leave_room(k.room_id)
    levels = await bot.get_power_levels(k.room_id)
    levels.set_user_level(UserID(admin_ghost), 0)
    await bot.set_power_levels(k.room_id, levels)
    await bot.set_room_name(k.room_id, "Somebody renamed me")
    assert UserID(bob_ghost) not in await k.alice.get_joined_members(k.room_id)

    await k.alice.send_text(k.room_id, "!session sync")
    reply = await bot_says(k.alice, k.room_id, app.config.bot_mxid, "^Synced", TIMEOUT)
    assert "**Kinds**" in reply and "3 members (1 admins)" in reply
    assert UserID(bob_ghost) in await k.alice.get_joined_members(k.room_id)
    levels = await k.alice.get_state_event(k.room_id, EventType.ROOM_POWER_LEVELS)
    assert levels.get_user_level(UserID(admin_ghost)) == ADMIN_LEVEL
    name = await k.alice.get_state_event(k.room_id, EventType.ROOM_NAME)
    assert name.name == "Kinds"


async def test_sync_refuses_outside_a_group_portal(env: DmEnv, users: MatrixUsers) -> None:
    carol = await users.new("carol")
    bot = env.app.config.bot_mxid
    room = await carol.create_room()
    await carol.invite_user(room, UserID(bot))
    await wait_for(lambda: _joined(carol, room, bot), "the bot to join", TIMEOUT)
    await carol.send_text(room, "!session sync")
    said = await bot_says(carol, room, bot, "works in a bridged group room", TIMEOUT)
    assert "not bridged" in said


async def _joined(user: Client, room: RoomID, mxid: str) -> bool:
    return UserID(mxid) in await user.get_joined_members(room)


# --- the bot's invites, announce, reminders -------------------------------------------------


@dataclass
class BotGroup:
    """A group the bot joined after a bridge admin's `groups accept`; Carol is a member."""

    boss: Client
    mgmt: RoomID
    admin: DevnetGroupAdmin
    inbox: Inbox
    carol: Member
    room_id: RoomID


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot_group(env: DmEnv, users: MatrixUsers) -> AsyncIterator[BotGroup]:
    app = env.app
    boss = await users.new("boss")
    app.config.bridge.permissions[str(boss.mxid)] = "admin"
    mgmt = await open_management_room(boss, app.config.bot_mxid)
    admin, inbox = await admin_with_inbox(env, "Book club")
    carol = await new_member(env.world, "Carol")
    try:
        await _member_joins(admin, carol, "Carol")
        clients = app._group.clients  # type: ignore[union-attr]
        await admin.invite(SessionID.parse(clients.bot_session_id()), "bridge")
        await told(inbox, "approve")
        await boss.send_text(mgmt, f"!session groups accept {admin.group_id.value[:20]}")
        await bot_says(boss, mgmt, app.config.bot_mxid, "The bot joined", TIMEOUT)
        portal = await app.repos.portals.get_by_key(PortalKind.GROUP, admin.group_id.value)
        assert portal is not None and portal.mxid is not None
        room_id = RoomID(portal.mxid)
        await boss.join_room(room_id)
        await _accepted(env, clients.bot_session_id(), admin.group_id.value)
        yield BotGroup(boss, mgmt, admin, inbox, carol, room_id)
    finally:
        await carol.groups.stop()


async def test_groups_accept_bridges_a_pending_bot_invite(env: DmEnv, bot_group: BotGroup) -> None:
    g = bot_group
    assert "it is now on Matrix" in await told(g.inbox, "now on Matrix")
    await g.admin.post(VisibleMessage(body="hello, Matrix"))
    hello = await matrix_event(g.boss, g.room_id, "the admin's message", body_is("hello, Matrix"))
    assert str(hello.sender) == ghost(env, g.admin.identity.session_id.value)


async def test_announce_on_posts_the_rooms_link_in_the_group(
    env: DmEnv, bot_group: BotGroup
) -> None:
    g = bot_group
    await g.boss.send_text(g.room_id, "!session announce on")
    bot = env.app.config.bot_mxid
    await bot_says(g.boss, g.room_id, bot, "posted this room's link", TIMEOUT)
    link = f"https://matrix.to/#/{g.room_id}"

    async def carol_sees() -> str | None:
        return next((b for b in g.carol.inbox.bodies() if b and link in b), None)

    text = await wait_for(carol_sees, "Carol to see the room's link", TIMEOUT)
    assert "also on Matrix" in text
    # Turning it on again posts nothing new.
    await g.boss.send_text(g.room_id, "!session announce on")

    async def answered_twice() -> list[str]:
        said = await messages_from(g.boss, str(g.room_id), bot)
        on = [b for b in said if "will post the deadline reminders" in b]
        return said if len(on) == 2 else []

    said = await wait_for(answered_twice, "the second answer", TIMEOUT)
    assert len([b for b in said if "posted this room's link" in b]) == 1


async def test_announce_on_says_why_without_the_bot_in_the_group(env: DmEnv, kinds: Kinds) -> None:
    k, app = kinds, env.app
    app.config.bridge.permissions[str(k.alice.mxid)] = "admin"
    await k.alice.send_text(k.room_id, "!session announce on")
    bot = app.config.bot_mxid
    said = await bot_says(k.alice, k.room_id, bot, "could not post this room's link", TIMEOUT)
    assert "has to be a member" in said
    await k.alice.send_text(k.room_id, "!session announce off")
    await bot_says(k.alice, k.room_id, bot, "No more deadline reminders", TIMEOUT)


def seven_days_before() -> int:
    day = datetime.date.fromisoformat(DEADLINE) - datetime.timedelta(days=7)
    moment = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


async def test_a_deadline_reminder_reaches_the_group(env: DmEnv, bot_group: BotGroup) -> None:
    g, app = bot_group, env.app
    portal = await app.repos.portals.get_by_mxid(str(g.room_id))
    assert portal is not None
    reminders = app.migration_reminders
    assert reminders is not None
    service = reminders.service
    await service.flags.set(portal.id, True)  # `announce on` (its own test above)
    service.settings = dataclasses.replace(service.settings, deadline=DEADLINE)
    service.clock = seven_days_before  # a fake clock: 7 days before the deadline
    assert await service.tick() >= 2  # the group's post and the room's notice, at least

    async def carol_sees() -> str | None:
        found = (b for b in g.carol.inbox.bodies() if b and "shuts down in 7 days" in b)
        return next(found, None)

    text = await wait_for(carol_sees, "Carol to get the reminder on Session", TIMEOUT)
    assert f"https://matrix.to/#/{g.room_id}" in text
    await bot_says(g.boss, g.room_id, app.config.bot_mxid, "shuts down in 7 days", TIMEOUT)
    assert await service.tick() == 0  # once per day


async def test_allowlisted_inviters_are_accepted_others_refused(env: DmEnv) -> None:
    app = env.app
    groups = app.config.groups
    listed, listed_inbox = await admin_with_inbox(env, "Listed")
    other, other_inbox = await admin_with_inbox(env, "Unlisted")
    clients = app._group.clients  # type: ignore[union-attr]
    bot_sid = SessionID.parse(clients.bot_session_id())
    groups.bot_invites = "allowlist"
    groups.allowed_inviters = [listed.identity.session_id.value]
    try:
        await listed.invite(bot_sid, "bridge")
        await other.invite(bot_sid, "bridge")
        assert "now on Matrix" in await told(listed_inbox, "now on Matrix")
        refused = await told(other_inbox, "I did not join")
        assert "only from the people its operator listed" in refused
    finally:
        groups.bot_invites, groups.allowed_inviters = "approve", []
    portal = await app.repos.portals.get_by_key(PortalKind.GROUP, listed.group_id.value)
    assert portal is not None and portal.mxid is not None
    assert await app.repos.portals.get_by_key(PortalKind.GROUP, other.group_id.value) is None
    membership = await clients.client(bot_sid.value).membership(other.group_id.value)
    assert membership is not None and membership.removed and not membership.accepted


async def test_groups_decline_refuses_a_pending_invite(env: DmEnv, bot_group: BotGroup) -> None:
    app, g = env.app, bot_group
    admin, inbox = await admin_with_inbox(env, "Declined club")
    clients = app._group.clients  # type: ignore[union-attr]
    await admin.invite(SessionID.parse(clients.bot_session_id()), "bridge")
    await told(inbox, "approve")
    bot = app.config.bot_mxid
    await g.boss.send_text(g.mgmt, f"!session groups decline {admin.group_id.value[:20]}")
    said = await bot_says(g.boss, g.mgmt, bot, "Declined the invite", TIMEOUT)
    assert "Declined club" in said
    assert "declined the invite" in await told(inbox, "declined")
    assert await app.repos.portals.get_by_key(PortalKind.GROUP, admin.group_id.value) is None
    await g.boss.send_text(g.mgmt, f"!session groups accept {admin.group_id.value}")
    await bot_says(g.boss, g.mgmt, bot, "No pending group invite of the bot matches", TIMEOUT)


# --- unbridge and restart ---------------------------------------------------------------------


def retrieves(env: DmEnv, account: str) -> int:
    """The devnet's request log: ``retrieve`` calls for ``account`` on every node."""
    return sum(node.retrieves[account] for node in env.net.nodes)


async def test_unbridge_stops_polling_the_group(env: DmEnv, kinds: Kinds) -> None:
    app, k = env.app, kinds
    app.config.bridge.permissions[str(k.alice.mxid)] = "admin"
    admin = await new_admin(env.world, "Short-lived")
    group = admin.group_id.value
    await admin.invite(k.login.identity.session_id, "Alice")
    room_id = await _portal_joined(env, k.alice, group)
    await _accepted(env, k.ours, group)
    await admin.post(VisibleMessage(body="still bridged"))
    await matrix_event(k.alice, room_id, "the message", body_is("still bridged"))
    start = retrieves(env, group)

    async def polled() -> bool:
        return retrieves(env, group) > start + 3

    await wait_for(polled, "the group to be polled", TIMEOUT)

    await k.alice.send_text(room_id, "!session unbridge")
    await bot_says(k.alice, room_id, app.config.bot_mxid, "no longer bridged", TIMEOUT)
    await admin.post(VisibleMessage(body="after the end"))

    async def quiet_for(polls: int) -> None:
        """Alice's own account (polled by the same bridge at the same interval) is polled
        ``polls`` more times; meanwhile the group must not be."""
        mine = retrieves(env, k.ours)

        async def later() -> bool:
            return retrieves(env, k.ours) >= mine + polls

        await wait_for(later, "Alice's account to be polled again", TIMEOUT)

    await quiet_for(3)  # a poll in flight when the command ran has landed
    after = retrieves(env, group)
    await quiet_for(20)
    assert retrieves(env, group) == after, "the unbridged group is still polled"
    # Not after a restart of the login's group client either (it reads its portals).
    clients = app._group.clients  # type: ignore[union-attr]
    await clients.resume(k.ours)
    await quiet_for(20)
    assert retrieves(env, group) == after, "the unbridged group is polled again"
    bodies = [getattr(e.content, "body", "") for e in await room_events(k.alice, str(room_id))]
    assert "after the end" not in bodies
    # The shared group is still polled by the same client.
    await k.bob.groups.send_text(k.group, "still here")
    await matrix_event(k.alice, k.room_id, "the shared group's message", body_is("still here"))


async def test_the_portal_survives_a_restart(env: DmEnv, kinds: Kinds) -> None:
    k = kinds
    config = env.app.config
    await env.app.stop()
    await k.bob.groups.send_text(k.group, "while the bridge was down")
    env.app = BridgeApp(config)
    await env.app.start()
    await matrix_event(
        k.alice, k.room_id, "the message sent while down", body_is("while the bridge was down")
    )
    await k.admin.post(VisibleMessage(body="after the restart"))
    await matrix_event(k.alice, k.room_id, "the live message", body_is("after the restart"))
    await k.alice.send_text(k.room_id, "back on Matrix")
    await seen_by_bob(k, "Bob to get Alice's message", bob_body("back on Matrix"))
    bodies = [
        e.content.body
        for e in await room_events(k.alice, str(k.room_id))
        if str(e.type) == "m.room.message"
    ]
    assert bodies.count("while the bridge was down") == 1
    portal = await env.app.repos.portals.get_by_key(PortalKind.GROUP, k.group)
    assert portal is not None and portal.mxid == str(k.room_id)
