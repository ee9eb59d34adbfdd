"""Group portals (Session → Matrix): real Synapse, real PostgreSQL/SQLite, the devnet's group
swarms with the devnet's test admin (tests/sessionnet/group_admin.py) as the Session side."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import ContentURI, EventType, RoomAlias, RoomID, UserID

from bridge.core.group.members import ADMIN_LEVEL
from bridge.core.logins import Login
from bridge.db.records import PortalKind
from bridge.ids import SessionID
from bridge.session.dm_media import upload_avatar
from bridge.session.groups.group_state import NS_KEYS
from bridge.session.groups.info import Picture
from bridge.session.groups.members import Member
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import (
    Profile,
    Quote,
    Reaction,
    ReactionAction,
    Unsend,
    VisibleMessage,
)
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, matrix_event, open_management_room
from tests.sessionnet.dm_setup import Inbox
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import new_admin

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 20.0


def body_is(text: str) -> Any:
    def match(event: Any) -> bool:
        return str(event.type) == "m.room.message" and getattr(event.content, "body", None) == text

    return match


async def group_room(env: DmEnv, group_id: str) -> RoomID:
    async def room() -> str | None:
        portal = await env.app.repos.portals.get_by_key(PortalKind.GROUP, group_id)
        return portal.mxid if portal is not None else None

    return RoomID(await wait_for(room, "the group portal", TIMEOUT))


async def joined_group(
    env: DmEnv, matrix_users: MatrixUsers, name: str, admin: DevnetGroupAdmin | None = None
) -> tuple[Client, Login, DevnetGroupAdmin, RoomID]:
    """A login of alice invited to a new group by its admin; alice joined the portal (which
    accepted on Session)."""
    alice = await matrix_users.new("alice")
    login = await env.app.logins.create_new(str(alice.mxid))
    admin = admin or await new_admin(env.world, name)
    group_id = admin.group_id.value
    await admin.invite(login.identity.session_id, "alice")
    room_id = await group_room(env, group_id)

    async def join() -> bool:
        try:
            await alice.join_room(room_id)
        except Exception:
            return False
        return True

    await wait_for(join, "alice to join the group portal", TIMEOUT)
    bot = env.app.config.bot_mxid
    notice = await bot_says(alice, room_id, bot, "invited your Session account", TIMEOUT)
    assert name in notice and "Join this room to accept" in notice

    clients = env.app._group.clients  # type: ignore[union-attr]

    async def accepted() -> bool:
        client = clients.client(login.session_id)
        membership = None if client is None else await client.membership(group_id)
        return membership is not None and membership.accepted

    await wait_for(accepted, "the invite accepted on Session", TIMEOUT)

    return alice, login, admin, room_id


async def test_login_invite_becomes_a_portal_and_messages_flow(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice, _login, admin, room_id = await joined_group(dm_env, matrix_users, "Gardeners")
    group_id = admin.group_id.value
    ours = admin.identity.session_id
    # The admin's message arrives as the admin's ghost, once, with the sent time.
    first = await admin.post(VisibleMessage(body="hello gardeners"))
    ghost = dm_env.app.ghosts.mxid_for(ours.value)
    hello = await matrix_event(alice, room_id, "the first message", body_is("hello gardeners"))
    assert str(hello.sender) == ghost
    assert hello.timestamp == first.timestamp
    assert UserID(ghost) in await alice.get_joined_members(room_id)

    # A quote becomes a reply.
    reply = await admin.post(
        VisibleMessage(body="a reply", quote=Quote(first.timestamp, ours.value))
    )
    event = await matrix_event(alice, room_id, "the reply", body_is("a reply"))
    relates = event.content.serialize()["m.relates_to"]
    assert relates["m.in_reply_to"]["event_id"] == str(hello.event_id)

    # A reaction, then an unsend of the reply (a redaction).
    await admin.post(Reaction(first.timestamp, ours.value, "🌱", ReactionAction.REACT))

    def is_reaction(e: Any) -> bool:
        return str(e.type) == "m.reaction" and e.content.relates_to.key == "🌱"

    reaction = await matrix_event(alice, room_id, "the reaction", is_reaction)
    assert str(reaction.content.relates_to.event_id) == str(hello.event_id)

    await admin.post(Unsend(reply.timestamp, ours.value))

    async def reply_redacted() -> bool:
        got = await alice.get_event(room_id, event.event_id)
        return not got.content.serialize().get("body")

    await wait_for(reply_redacted, "the reply redacted", TIMEOUT)
    # Each message once: one mapping per Session message.
    portal = await dm_env.app.repos.portals.get_by_key(PortalKind.GROUP, group_id)
    assert portal is not None
    mapped = await dm_env.app.repos.messages.get_parts(portal.id, first.hash)
    assert len(mapped) == 1

    # A new name on Session renames the room.
    await admin.set_name("Gardeners United")

    async def renamed() -> bool:
        state = await alice.get_state_event(room_id, "m.room.name")  # type: ignore[arg-type]
        return bool(state.name == "Gardeners United")

    await wait_for(renamed, "the room renamed", TIMEOUT)


async def test_members_are_ghosts_with_levels_and_a_destroyed_group_ends(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice, login, admin, room_id = await joined_group(dm_env, matrix_users, "Choir")
    ghosts = dm_env.app.ghosts
    admin_ghost = ghosts.mxid_for(admin.identity.session_id.value)
    bob = Identity.generate()
    await admin.invite(bob.session_id, "Bob")
    bob_ghost = ghosts.mxid_for(bob.session_id.value)

    async def both_in() -> bool:
        members = await alice.get_joined_members(room_id)
        return UserID(admin_ghost) in members and UserID(bob_ghost) in members

    await wait_for(both_in, "the members' ghosts in the room", TIMEOUT)
    # The logged-in member is its Matrix owner, never a ghost.
    assert UserID(ghosts.mxid_for(login.session_id)) not in await alice.get_joined_members(room_id)

    async def admin_level() -> bool:
        levels = await alice.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)
        return bool(levels.get_user_level(UserID(admin_ghost)) == ADMIN_LEVEL)

    await wait_for(admin_level, "the group admin's power level", TIMEOUT)
    levels = await alice.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)
    assert levels.get_user_level(UserID(bob_ghost)) == 0
    members = await alice.get_joined_members(room_id)
    assert members[UserID(bob_ghost)].displayname is not None
    assert "Bob" in str(members[UserID(bob_ghost)].displayname)

    await admin.remove(bob.session_id)

    async def bob_gone() -> bool:
        return UserID(bob_ghost) not in await alice.get_joined_members(room_id)

    await wait_for(bob_gone, "the removed member's ghost to leave", TIMEOUT)

    # The group's picture becomes the room avatar.
    png = tiny_png()
    url, key = await upload_avatar(dm_env.world.files, png)
    admin.info = dataclasses.replace(admin.info, picture=Picture(url, key))
    await admin.push()

    async def avatar() -> str | None:
        try:
            state = await alice.get_state_event(room_id, EventType.ROOM_AVATAR)
        except Exception:
            return None
        return str(state.url) if state.url else None

    mxc = await wait_for(avatar, "the room avatar", TIMEOUT)
    assert await alice.download_media(ContentURI(mxc)) == png

    await admin.destroy()
    bot = dm_env.app.config.bot_mxid
    notice = await bot_says(alice, room_id, bot, "deleted this Session group", TIMEOUT)
    assert "plain Matrix room" in notice

    async def unbridged() -> bool:
        portal = await dm_env.app.repos.portals.get_by_key(PortalKind.GROUP, admin.group_id.value)
        return portal is not None and portal.unbridged_at is not None

    await wait_for(unbridged, "the portal to become a plain room", TIMEOUT)


async def test_a_kicked_login_gets_a_notice_and_polling_stops(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice, login, admin, room_id = await joined_group(dm_env, matrix_users, "Band")
    await admin.remove(login.identity.session_id)
    bot = dm_env.app.config.bot_mxid
    notice = await bot_says(alice, room_id, bot, "no longer reads or writes", TIMEOUT)
    assert f"{alice.mxid}'s Session account" in notice
    client = dm_env.app._group.clients.client(login.session_id)  # type: ignore[union-attr]
    assert client is not None
    membership = await client.membership(admin.group_id.value)
    assert membership is not None and membership.removed
    assert client.poller.state(admin.group_id.value) is None  # no longer polled


async def admin_with_inbox(env: DmEnv, name: str) -> tuple[DevnetGroupAdmin, Inbox]:
    """A new group whose admin's 1:1 client receives (the bot's answers)."""
    identity, inbox = Identity.generate(), Inbox()
    dm = await env.world.client(identity, inbox=inbox, profile=Profile("Admin"))
    return await DevnetGroupAdmin.create(env.world.snode, dm, identity, name), inbox


async def told(inbox: Inbox, words: str) -> str:
    async def find() -> str | None:
        return next((b for b in inbox.bodies() if b and words in b), None)

    return str(await wait_for(find, f"the bot to say {words!r} on Session", TIMEOUT))


async def test_bot_invite_waits_for_a_bridge_admin_by_default(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    assert dm_env.app.config.groups.bot_invites == "approve"  # the default
    boss = await matrix_users.new("boss")
    dm_env.app.config.bridge.permissions[str(boss.mxid)] = "admin"
    bot = dm_env.app.config.bot_mxid
    mgmt = await open_management_room(boss, bot)
    admin, inbox = await admin_with_inbox(dm_env, "Book club")
    group_id = admin.group_id.value
    clients = dm_env.app._group.clients  # type: ignore[union-attr]
    bot_sid = SessionID.parse(clients.bot_session_id())

    await admin.invite(bot_sid, "bridge")
    assert "bridge admin has to approve" in await told(inbox, "approve")
    # Nothing was created on the homeserver.
    assert await dm_env.app.repos.portals.get_by_key(PortalKind.GROUP, group_id) is None

    # A user who is no admin cannot decide.
    carol = await matrix_users.new("carol")
    carol_mgmt = await open_management_room(carol, bot)
    await carol.send_text(carol_mgmt, "!session groups pending")
    await bot_says(carol, carol_mgmt, bot, "Only bridge admins")

    await boss.send_text(mgmt, "!session groups pending")
    listed = await bot_says(boss, mgmt, bot, "waiting for a decision")
    assert group_id in listed and "Book club" in listed
    await boss.send_text(mgmt, f"!session groups accept {group_id[:16]}")
    await bot_says(boss, mgmt, bot, "The bot joined", timeout=TIMEOUT * 2)
    room_id = await group_room(dm_env, group_id)
    await boss.join_room(room_id)
    alias = f"#session_group-{group_id}:{dm_env.app.config.homeserver.domain}"
    assert str((await boss.resolve_room_alias(RoomAlias(alias))).room_id) == str(room_id)
    assert "it is now on Matrix" in await told(inbox, "now on Matrix")

    await admin.post(VisibleMessage(body="welcome, Matrix"))
    hello = await matrix_event(boss, room_id, "the admin's message", body_is("welcome, Matrix"))
    assert str(hello.sender) == dm_env.app.ghosts.mxid_for(admin.identity.session_id.value)
    await boss.send_text(mgmt, "!session groups pending")
    await bot_says(boss, mgmt, bot, "No group invite of the bot is waiting")


async def test_bot_invite_refused_says_why(dm_env: DmEnv) -> None:
    dm_env.app.config.groups.bot_invites = "refuse"
    admin, inbox = await admin_with_inbox(dm_env, "Secret society")
    clients = dm_env.app._group.clients  # type: ignore[union-attr]
    await admin.invite(SessionID.parse(clients.bot_session_id()), "bridge")
    assert "does not accept group invites" in await told(inbox, "I did not join")
    bot_client = clients.client(clients.bot_session_id())
    membership = await bot_client.membership(admin.group_id.value)
    assert membership is not None and membership.removed and not membership.accepted
    portal = await dm_env.app.repos.portals.get_by_key(PortalKind.GROUP, admin.group_id.value)
    assert portal is None


async def test_history_is_imported_in_order_once_within_the_limit(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    dm_env.app.config.groups.backfill_limit = 2
    admin = await new_admin(dm_env.world, "Archive")
    sent = [await admin.post(VisibleMessage(body=f"old {i}")) for i in range(3)]
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    member = login.identity.session_id
    # Invited with the group's history: the older keys go to the new member (§3.5).
    await admin.invite(member, "alice")
    supplement = admin.keyring.supplement([member])
    await admin.push(extra=[admin._store(NS_KEYS, supplement)])
    room_id = await group_room(dm_env, admin.group_id.value)
    before_join = await admin.post(VisibleMessage(body="while invited"))

    async def join() -> bool:
        try:
            await alice.join_room(room_id)
        except Exception:
            return False
        return True

    await wait_for(join, "alice to join the group portal", TIMEOUT)
    await matrix_event(alice, room_id, "the message sent while invited", body_is("while invited"))
    await admin.post(VisibleMessage(body="live one"))
    await matrix_event(alice, room_id, "the live message", body_is("live one"))
    bodies = [
        (str(e.content.body), e.timestamp)
        for e in await room_events(alice, room_id)
        if str(e.type) == "m.room.message" and str(e.content.msgtype) == "m.text"
    ]
    # The oldest two of the history (the limit), in order, with their original times, once
    # each; then what came after the portal existed, before the live message.
    assert bodies[:3] == [
        ("old 0", sent[0].timestamp),
        ("old 1", sent[1].timestamp),
        ("while invited", before_join.timestamp),
    ]
    assert [b for b, _ in bodies] == ["old 0", "old 1", "while invited", "live one"]


async def test_a_group_joined_on_the_phone_is_adopted(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    member = login.identity.session_id
    admin = await new_admin(dm_env.world, "Neighbours")
    # The account joined on another device: it is in Members and holds its auth data, and
    # the bridge got no invite.
    admin.members[member] = Member(member, name="alice", invite=None)
    await admin.push(rekey=True, extra=[admin._tokens("unrevoke_subaccount", [member])])
    auth_data = make_member_auth_data(admin.group.seed, member)
    kind = dm_env.app._group  # type: ignore[union-attr]
    assert kind is not None

    portal = await kind.adopt_group(
        login.session_id, admin.group_id.value, "Neighbours", auth_data=auth_data
    )
    room_id = RoomID(str(portal.mxid))
    await alice.join_room(room_id)
    await admin.post(VisibleMessage(body="hi neighbours"))
    hello = await matrix_event(alice, room_id, "the group's message", body_is("hi neighbours"))
    assert str(hello.sender) == dm_env.app.ghosts.mxid_for(admin.identity.session_id.value)
    client = kind.clients.client(login.session_id)
    assert client is not None
    membership = await client.membership(admin.group_id.value)
    assert membership is not None and membership.accepted and not membership.removed
