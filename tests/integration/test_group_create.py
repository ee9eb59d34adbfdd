"""``create-group`` end to end: the bridge in process with the real Synapse and PostgreSQL, the
devnet's group swarms, and the project's member client (GroupsClient) as an independent
Session member.

A room admin with a login runs ``create-group`` in a plain room holding a Session user's ghost
and another Matrix user with a login: the devnet holds a new group with the room's name,
topic and avatar, the caller's login its admin; the ghost's Session account gets an invite,
accepts it in its own client, and then messages flow both ways; the other login is in the
group at once. Then every refusal, and the bot as admin when the operator allows it.
"""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import EventType, RoomAvatarStateEventContent, RoomID, UserID

from bridge.db.records import PortalKind
from bridge.ids import SessionID
from bridge.session.avatars import decrypt_avatar_from_url
from bridge.session.groups.events import GroupInviteEvent, GroupMessageEvent
from bridge.session.messages import VisibleMessage
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, MatrixUsers, wait_for
from tests.integration.helpers import bot_says, has_member, matrix_sees
from tests.sessionnet.group_world import Member, new_member

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 30.0


async def _room(
    user: Client, bot: str, name: str | None, *, bot_level: int = 50, topic: str = ""
) -> RoomID:
    """A plain room of ``user`` with the bot in it (at ``bot_level``)."""
    room_id = await user.create_room(
        name=name,
        topic=topic or None,
        invitees=[UserID(bot)],
        power_level_override={"users": {bot: bot_level}},  # the creator: unlimited (v12)
    )
    await wait_for(lambda: has_member(user, room_id, bot), "the bot to join", TIMEOUT)
    return room_id


def _group_clients(env: DmEnv) -> Any:
    return env.app._group.clients  # type: ignore[union-attr]  # the bridge's GroupClients


async def _accepted(env: DmEnv, session_id: str, group: str) -> None:
    async def ready() -> bool:
        client = _group_clients(env).client(session_id)
        if client is None:
            return False
        membership = await client.membership(group)
        state = client.poller.state(group)
        return bool(membership and membership.accepted and state is not None and state.ready)

    await wait_for(ready, f"{session_id[:10]} to be a member of {group[:12]}", TIMEOUT)


async def _ghost_in_room(env: DmEnv, owner: Client, room_id: RoomID, member: Member) -> str:
    """The Session member's ghost, in the room (as after a chat with them on Matrix)."""
    ghost = await env.app.ghosts.ensure(member.identity.session_id.value)
    await owner.invite_user(room_id, UserID(ghost.mxid))
    await ghost.intent.join_room_by_id(room_id)
    await wait_for(lambda: has_member(owner, room_id, ghost.mxid), "the ghost to join", TIMEOUT)
    return ghost.mxid


def _bodies_from(member: Member, session_id: str) -> list[str | None]:
    return [
        e.content.body
        for e in member.inbox.of(GroupMessageEvent)
        if e.sender.value == session_id and isinstance(e.content, VisibleMessage)
    ]


async def test_create_group_from_a_room_then_a_session_member_joins_and_messages_flow(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app, world = dm_env.app, dm_env.world
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    carol = await matrix_users.new("carol")
    login = await app.logins.create_new(str(alice.mxid))
    carol_login = await app.logins.create_new(str(carol.mxid))
    ours = login.session_id
    bob = await new_member(world, "Bob")
    try:
        room_id = await _room(alice, bot, "Book club", topic="We read slowly")
        png = tiny_png()
        mxc = await alice.upload_media(png, mime_type="image/png", filename="club.png")
        await alice.send_state_event(
            room_id, EventType.ROOM_AVATAR, RoomAvatarStateEventContent(url=mxc)
        )
        await alice.invite_user(room_id, carol.mxid)
        await carol.join_room(room_id)
        await _ghost_in_room(dm_env, alice, room_id, bob)
        await _accepted_ready_clients(dm_env, ours, carol_login.session_id)

        await alice.send_text(room_id, "!session create-group")
        reply = await bot_says(alice, room_id, bot, "now the portal of the new Session group")
        assert "**Book club**" in reply and ours in reply and "Invited on Session: 2" in reply

        portal = await app.repos.portals.get_by_mxid(room_id)
        assert portal is not None and portal.kind == PortalKind.GROUP
        group = portal.session_key
        assert group.startswith("03") and group in reply
        await _accepted(dm_env, ours, group)  # the creator's client polls it as admin

        # The Session member is invited by the creator's login, and accepts in its own client.
        (invite,) = await bob.inbox.wait(GroupInviteEvent, timeout=TIMEOUT)
        assert invite.group.value == group and invite.inviter.value == ours
        assert invite.name == "Book club"
        assert await bob.groups.accept(group) is not None
        info = bob.groups.info(group)
        assert info is not None and info.name == "Book club"
        assert info.description == "We read slowly"
        assert info.picture is not None  # the room avatar, encrypted as the apps do
        blob = await world.files.download(info.picture.url)
        assert decrypt_avatar_from_url(blob, info.picture.key, info.picture.url) == png
        state = bob.groups.poller.state(group)
        assert state is not None
        creator = state.members.get(login.identity.session_id)
        assert creator is not None and creator.admin  # the caller's login is the admin
        listed = {m.session_id.value for m in state.members}
        assert {ours, carol_login.session_id, bob.identity.session_id.value} <= listed

        # Bob's invite response is answered by the creator's login, a group admin since the
        # group was made (its client polls the group with the seed): as the devnet holds
        # Members, his invite is settled ("I" cleared, docs/groups-v2.md §7.3 4).
        async def settled(session_id: str) -> bool:
            members = bob.groups.poller.state(group)
            entry = None if members is None else members.members.get(SessionID.parse(session_id))
            return entry is not None and entry.invite is None and not entry.supplement

        bob_sid = bob.identity.session_id.value
        await wait_for(lambda: settled(bob_sid), "Bob's invite answered", TIMEOUT)
        # The other Matrix user's login was in the room: it is a member at once, settled too.
        await _accepted(dm_env, carol_login.session_id, group)
        await wait_for(lambda: settled(carol_login.session_id), "Carol's invite settled", TIMEOUT)
        # The creator's UserGroups holds the group with its admin seed (the phone shows it).
        configs = app._direct.accounts.configs  # type: ignore[union-attr]

        async def in_user_groups() -> bool:
            joined = configs.groups_joined(ours)
            return any(g.group_id == group and g.secret_key for g in joined)

        await wait_for(in_user_groups, "the group in the creator's UserGroups", TIMEOUT)

        # Matrix → Session, from the creator and from the other login.
        await alice.send_text(room_id, "welcome to the club")
        await carol.send_text(room_id, "hello from carol")

        async def bob_reads() -> bool:
            return "welcome to the club" in _bodies_from(bob, ours) and (
                "hello from carol" in _bodies_from(bob, carol_login.session_id)
            )

        await wait_for(bob_reads, "Bob to read both Matrix messages", TIMEOUT)
        # Session → Matrix, as Bob's ghost.
        await bob.groups.send_text(group, "glad to be here")
        seen = await matrix_sees(alice, room_id, "^glad to be here$")
        assert str(seen.sender) == app.ghosts.mxid_for(bob.identity.session_id.value)

        # Running it again in the portal is refused.
        await alice.send_text(room_id, "!session create-group")
        await bot_says(alice, room_id, bot, "already bridged")
    finally:
        await bob.groups.stop()


async def _accepted_ready_clients(env: DmEnv, *session_ids: str) -> None:
    async def running() -> bool:
        return all(_group_clients(env).client(s) is not None for s in session_ids)

    await wait_for(running, "the logins' group clients", TIMEOUT)


async def _group_portals(env: DmEnv) -> int:
    return len(await env.app.repos.portals.list_active(PortalKind.GROUP))


async def test_refusals_and_the_bot_as_admin_when_allowed(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    app = dm_env.app
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    dave = await matrix_users.new("dave")  # no login
    login = await app.logins.create_new(str(alice.mxid))
    await _accepted_ready_clients(dm_env, login.session_id)
    before = await _group_portals(dm_env)

    # Not a room admin (dave joined alice's room at the default level).
    room_id = await _room(alice, bot, "Alice's room")
    await alice.invite_user(room_id, dave.mxid)
    await dave.join_room(room_id)
    await dave.send_text(room_id, "!session create-group")
    await bot_says(dave, room_id, bot, "Only an admin of this room")

    # No acting identity: dave, admin of his own room, has no login.
    dave_room = await _room(dave, bot, "Dave's room")
    await dave.send_text(dave_room, "!session create-group")
    await bot_says(dave, dave_room, bot, "You have no Session login")

    # The bot without moderator rights cannot mark the room.
    weak = await _room(alice, bot, "Weak bot", bot_level=0)
    await alice.send_text(weak, "!session create-group")
    await bot_says(alice, weak, bot, "I need moderator rights")

    # No name to give the group.
    nameless = await _room(alice, bot, None)
    await alice.send_text(nameless, "!session create-group")
    await bot_says(alice, nameless, bot, "This room has no name")

    # Nothing was created by any of those.
    assert await _group_portals(dm_env) == before
    for refused in (room_id, dave_room, weak, nameless):
        assert await app.repos.portals.get_by_mxid(refused) is None

    # A name given with the command; and the operator lets the bot act for dave.
    app.config.groups.create_as_bot = True
    await dave.send_text(dave_room, "!session create-group Dave's readers")
    reply = await bot_says(dave, dave_room, bot, "now the portal")
    assert "**Dave's readers**" in reply and "the bridge's own Session account" in reply
    portal = await app.repos.portals.get_by_mxid(dave_room)
    assert portal is not None and portal.kind == PortalKind.GROUP
    await _accepted(dm_env, _group_clients(dm_env).bot_session_id(), portal.session_key)
    assert await _group_portals(dm_env) == before + 1
