"""Bridge-made Session identities (docs/migration.md §7), end to end: the bridge in process with
the real Synapse and PostgreSQL, the devnet's storage nodes, community server and file server.

* A community portal: Eve (no Session account) turns her identity on; while the room does not
  allow made identities she is relayed by the bot ("Eve: text"); once a room admin allowed
  them, an independent Session user of the community (the project's community client under
  another identity) sees her post under her identity's own blinded id, with the template name
  and a picture; its UserProfile config holds the same; her reaction (and its removal), edit
  and deletion are her identity's too; a new Matrix name and avatar are published again. The
  global finalize deletes the identity and tells the bridge admins.
* A group portal whose admin key a login holds: Eve is refused while the room does not allow
  made identities (relay off); once it does, the login's admin identity invites her identity,
  which accepts and posts; another member of the group (the project's group client) sees the
  message from her identity, with the template name, and lists it as a member; after a
  restart her identity still posts; once the room denies made identities again, it leaves the
  group (Bob's app no longer lists it) and Eve is refused (relay off); allowed again, it is
  invited again and posts.
* A group where the bridge holds no admin key: Eve is told why her identity cannot join, and
  her message takes the usual way (refused, relay being off).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import EventType, RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.db.records import PortalKind
from bridge.db.repos.links import IdentityKind, LinkRepo
from bridge.session.blinding import blind15_id
from bridge.session.groups.events import GroupInviteEvent, GroupMessageEvent
from bridge.session.groups.members import Member as GroupMember
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.messages import VisibleMessage
from bridge.session.poller import MemoryPollState
from bridge.session.sogs.client import CommunityClient
from bridge.session.userconfig.sync import MemoryUserConfigStore, UserConfigs
from tests.images import tiny_png
from tests.integration.conftest import (
    CommunityDevnet,
    DmEnv,
    MatrixUsers,
    messages_from,
    wait_for,
)
from tests.integration.helpers import bot_says, bridged_room, matrix_sees
from tests.sessionnet.group_world import new_admin, new_member

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
TIMEOUT = 30.0


@pytest.fixture
def made_ids_on(bridge_config: Config) -> None:
    bridge_config.session.community_poll_interval = 0.2
    bridge_config.migration.made_identities = True


async def _eve(matrix_users: MatrixUsers, room_id: RoomID, inviter: Client) -> Client:
    eve = await matrix_users.new("eve")
    await eve.set_displayname("Eve")
    avatar = await eve.upload_media(tiny_png(), mime_type="image/png", filename="eve.png")
    await eve.set_avatar_url(avatar)
    await inviter.invite_user(room_id, UserID(eve.mxid))
    await eve.join_room(room_id)
    return eve


async def _posts(observer: CommunityClient, token: str, author: str) -> list[VisibleMessage]:
    return [
        m.content
        for m in await observer.recent(token, 50)
        if str(m.author) == author and isinstance(m.content, VisibleMessage)
    ]


async def test_a_made_identity_posts_in_a_community_and_is_deleted_by_finalize(
    made_ids_on: None,
    dm_env: DmEnv,
    devnet: CommunityDevnet,
    matrix_users: MatrixUsers,
) -> None:
    app = dm_env.app
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    app.config.bridge.permissions[str(alice.mxid)] = "admin"
    room_id = await bridged_room(alice, bot, devnet.url)
    portal = await app.repos.portals.get_by_mxid(str(room_id))
    assert portal is not None
    await app.repos.portals.update(dataclasses.replace(portal, relay_enabled=True))
    eve = await _eve(matrix_users, room_id, alice)
    tom = await devnet.member()  # an independent Session user of the community
    key = bytes.fromhex(devnet.servers.community.pubkey_hex)
    bot_blinded = blind15_id((await app.logins.bot_login()).identity, key).value

    await eve.send_text(room_id, "!session session-identity on")
    answer = await bot_says(eve, room_id, bot, "identity is on")
    made = app._made_ids.made.of(str(eve.mxid))  # type: ignore[union-attr]
    assert made is not None and made.session_id in answer
    eve_blinded = blind15_id(made.identity, key).value

    # Not allowed in this room yet: Eve stays relayed by the bot.
    await eve.send_text(room_id, "before allowing")

    async def relayed() -> list[VisibleMessage]:
        return [
            p for p in await _posts(tom, devnet.room, bot_blinded) if "before" in (p.body or "")
        ]

    [post] = await wait_for(relayed, "the relayed post", TIMEOUT)
    assert post.body == "Eve: before allowing"
    assert await _posts(tom, devnet.room, eve_blinded) == []

    # Only a room admin may allow them; Alice (a bridge admin) does.
    await eve.send_text(room_id, "!session identities allow")
    await bot_says(eve, room_id, bot, "Only an admin of this room")
    await alice.send_text(room_id, "!session identities allow")
    await bot_says(alice, room_id, bot, "are allowed here")
    own_event = await eve.send_text(room_id, "hello as myself")

    async def own() -> list[VisibleMessage]:
        return await _posts(tom, devnet.room, eve_blinded)

    [mine] = await wait_for(own, "Eve's post under her own blinded id", TIMEOUT)
    assert mine.body == "hello as myself"
    assert mine.profile is not None and mine.profile.display_name == "Eve (Matrix)"
    assert mine.profile.avatar_url and mine.profile.avatar_key
    # The post is Eve's on Matrix already: it is not bridged back as a ghost's.
    ghost = app.ghosts.mxid_for(eve_blinded)
    members = {str(m) for m in await alice.get_joined_members(room_id)}
    assert ghost not in members

    # Her identity's UserProfile config is on the network, as another device of it reads it.
    device = UserConfigs(
        made.identity, dm_env.world.snode, MemoryUserConfigStore(), MemoryPollState()
    )
    await device.poll_once()
    assert device.profile().name == "Eve (Matrix)"
    assert device.profile().picture_url == mine.profile.avatar_url

    # Her reaction to Tom's post is made by her identity, not relayed by the bot; taking it
    # back removes it the same way.
    posted = await tom.post(devnet.room, VisibleMessage(body="react to me", profile=None))
    seen = await matrix_sees(eve, room_id, "^react to me$")
    relates = {"rel_type": "m.annotation", "event_id": str(seen.event_id), "key": "👍"}
    reaction = await eve.send_message_event(room_id, EventType.REACTION, {"m.relates_to": relates})

    thumbs: dict[str, set[str]] = {}  # the 👍 reactors of the post, as Tom's polls see them

    async def reactors() -> set[str]:
        for item in (await tom.poll()).rooms[devnet.room].items:
            if item.id == posted.id:
                found = [r for r in item.reactions if r.emoji == "👍"]
                thumbs["now"] = {sid.lower() for r in found for sid in r.reactors}
        return thumbs.get("now", set())

    async def reacted() -> set[str] | None:
        return await reactors() or None

    who = await wait_for(reacted, "Eve's reaction, made by her identity", TIMEOUT)
    assert who == {eve_blinded.lower()} and bot_blinded.lower() not in who
    await eve.redact(room_id, reaction)

    async def unreacted() -> bool:
        return not await reactors()

    await wait_for(unreacted, "Eve's reaction taken back by her identity", TIMEOUT)

    # A new Matrix name and avatar are published again, without `session-identity on`.
    await eve.set_displayname("Evelyn")
    avatar = await eve.upload_media(tiny_png(), mime_type="image/png", filename="new.png")
    await eve.set_avatar_url(avatar)

    async def republished() -> Any:
        device = UserConfigs(
            made.identity, dm_env.world.snode, MemoryUserConfigStore(), MemoryPollState()
        )
        await device.poll_once()
        shown = device.profile()
        fresh = shown.name == "Evelyn (Matrix)" and shown.picture_url != mine.profile.avatar_url
        return shown if fresh and shown.picture_url else None

    await wait_for(republished, "her identity's UserProfile to follow her Matrix profile", TIMEOUT)

    # Her edit and her deletion are made by her identity too.
    new = {"msgtype": "m.text", "body": "hello, edited"}
    edit = {
        "msgtype": "m.text",
        "body": "* hello, edited",
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": own_event},
    }
    await eve.send_message_event(room_id, EventType.ROOM_MESSAGE, edit)

    async def edited() -> list[Any]:
        return [
            m
            for m in await tom.recent(devnet.room, 50)
            if str(m.author) == eve_blinded
            and isinstance(m.content, VisibleMessage)
            and m.content.body == "hello, edited"
        ]

    [original] = await wait_for(edited, "the edit made by Eve's identity", TIMEOUT)
    assert original.content.profile.display_name == "Evelyn (Matrix)"  # her name now
    await eve.redact(room_id, own_event)

    async def deleted() -> bool:
        return all(m.id != original.id for m in await tom.recent(devnet.room, 50))

    await wait_for(deleted, "Eve's post to be deleted by her identity", TIMEOUT)

    # The global finalize deletes the identity and tells the bridge admins (those named in
    # the config when the bridge started: their report is caught here).
    assert app.migration_reminders is not None
    finalizer = app.migration_reminders.finalizer
    told: list[str] = []

    async def tell(text: str) -> None:
        told.append(text)

    finalizer._tell_admins = tell  # type: ignore[method-assign]
    assert await finalizer.everything()
    [report] = told
    assert "Bridge-made Session identities deleted (1):" in report
    assert f"{eve.mxid}: the bridge-made identity `{made.session_id}`" in report
    assert app._made_ids.made.of(str(eve.mxid)) is None  # type: ignore[union-attr]
    kinds = [r.kind for r in await LinkRepo(app.db).identities()]
    assert IdentityKind.BRIDGE_IDENTITY not in kinds
    assert await app.repos.users.get_login_by_session_id(made.session_id) is None


async def test_a_made_identity_joins_a_group_through_its_admin_and_posts(
    made_ids_on: None, dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    world, app = dm_env.world, dm_env.app
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    app.config.bridge.permissions[str(alice.mxid)] = "admin"
    login = await app.logins.create_new(str(alice.mxid))
    admin = await new_admin(world, "Movers")
    # Alice's account is an admin of the group (it holds the group's key, as after a
    # promotion on the phone); the bridge adopts the group from her account's configs.
    sid = login.identity.session_id
    admin.members[sid] = GroupMember(sid, name="alice", admin=True, invite=None)
    await admin.push(rekey=True, extra=[admin._tokens("unrevoke_subaccount", [sid])])
    bob = await new_member(world, "Bob")
    try:
        await admin.invite(bob.identity.session_id, "Bob")
        await bob.inbox.wait(GroupInviteEvent, timeout=TIMEOUT)
        await bob.groups.accept(admin.group_id)
        kind = app._group
        assert kind is not None
        group = admin.group_id.value
        portal = await kind.adopt_group(login.session_id, group, "Movers", seed=admin.group.seed)
        assert portal.kind is PortalKind.GROUP and not portal.relay_enabled
        room_id = RoomID(str(portal.mxid))
        await alice.join_room(room_id)
        eve = await _eve(matrix_users, room_id, alice)

        await eve.send_text(room_id, "!session session-identity on")
        await bot_says(eve, room_id, bot, "identity is on")
        made = app._made_ids.made.of(str(eve.mxid))  # type: ignore[union-attr]
        assert made is not None
        # Not allowed here yet, and relay is off: refused, with the reason.
        await eve.send_text(room_id, "before allowing")
        await bot_says(eve, room_id, bot, "relay is off")

        await alice.send_text(room_id, "!session identities allow")
        await bot_says(alice, room_id, bot, "are allowed here")
        await eve.send_text(room_id, "hello group")

        async def from_eve() -> list[Any]:
            return [
                e
                for e in bob.inbox.of(GroupMessageEvent)
                if e.sender.value == made.session_id and isinstance(e.content, VisibleMessage)
            ]

        [message] = await wait_for(from_eve, "Bob to see Eve's own message", TIMEOUT)
        assert message.content.body == "hello group"
        assert message.content.profile is not None
        assert message.content.profile.display_name == "Eve (Matrix)"
        assert "before allowing" not in bob.inbox.bodies()
        # Eve's identity is a member as Bob's app lists it: her template name, invite settled.
        client = kind.clients.client(made.session_id)
        assert client is not None
        membership = await client.membership(group)
        assert membership is not None and membership.accepted and not membership.removed

        async def listed() -> GroupMember | None:
            state = bob.groups.poller.state(group)
            entry = None if state is None else state.members.get(made.identity.session_id)
            return entry if entry is not None and entry.invite is None else None

        entry = await wait_for(listed, "Bob's app to list Eve's identity as a member", TIMEOUT)
        assert entry.name == "Eve (Matrix)" and not entry.admin

        # After a restart the identity (its keys from the database) still posts as Eve.
        await app.stop()
        restarted = BridgeApp(app.config)
        await restarted.start()
        try:
            await eve.send_text(room_id, "after a restart")

            async def again() -> list[Any]:
                return [e for e in await from_eve() if e.content.body == "after a restart"]

            await wait_for(again, "Bob to see Eve's message after a restart", TIMEOUT)

            # The room denies made identities again: Eve's identity leaves the group (the
            # login's admin identity removes it), and she is no longer posted as.
            await alice.send_text(room_id, "!session identities deny")
            await bot_says(alice, room_id, bot, "1 of them left the group on Session")

            async def gone() -> bool:
                state = bob.groups.poller.state(group)
                return state is not None and made.identity.session_id not in state.members

            await wait_for(gone, "Bob's app to no longer list Eve's identity", TIMEOUT)
            assert restarted._group is not None
            left = restarted._group.clients.client(made.session_id)
            assert left is not None
            membership = await left.membership(group)
            assert membership is not None and membership.removed
            await eve.send_text(room_id, "after the deny")

            async def refused_twice() -> bool:
                bodies = await messages_from(eve, str(room_id), bot)
                return len([b for b in bodies if "relay is off" in b]) >= 2

            await wait_for(refused_twice, "Eve's message refused (relay off)", TIMEOUT)
            assert "after the deny" not in bob.inbox.bodies()

            # Allowed again: her identity is invited again at her next message.
            await alice.send_text(room_id, "!session identities allow")

            async def allowed_twice() -> bool:
                bodies = await messages_from(alice, str(room_id), bot)
                return len([b for b in bodies if "are allowed here" in b]) >= 2

            await wait_for(allowed_twice, "the room to allow made identities again", TIMEOUT)
            await eve.send_text(room_id, "back again")

            async def back() -> list[Any]:
                return [e for e in await from_eve() if e.content.body == "back again"]

            await wait_for(back, "Bob to see Eve's identity back in the group", TIMEOUT)
        finally:
            await restarted.stop()
    finally:
        await bob.groups.stop()


async def test_without_an_admin_identity_the_user_is_told_and_not_posted_as(
    made_ids_on: None, dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    world, app = dm_env.world, dm_env.app
    bot = app.config.bot_mxid
    alice = await matrix_users.new("alice")
    app.config.bridge.permissions[str(alice.mxid)] = "admin"
    login = await app.logins.create_new(str(alice.mxid))
    admin = await new_admin(world, "No admin here")
    # Alice's account is a plain member: the bridge holds no key to invite anyone with.
    sid = login.identity.session_id
    admin.members[sid] = GroupMember(sid, name="alice", invite=None)
    await admin.push(rekey=True, extra=[admin._tokens("unrevoke_subaccount", [sid])])
    kind = app._group
    assert kind is not None
    group = admin.group_id.value
    auth = make_member_auth_data(admin.group.seed, sid)
    portal = await kind.adopt_group(login.session_id, group, "No admin here", auth_data=auth)
    room_id = RoomID(str(portal.mxid))
    await alice.join_room(room_id)
    eve = await _eve(matrix_users, room_id, alice)
    await eve.send_text(room_id, "!session session-identity on")
    await bot_says(eve, room_id, bot, "identity is on")
    made = app._made_ids.made.of(str(eve.mxid))  # type: ignore[union-attr]
    assert made is not None
    await alice.send_text(room_id, "!session identities allow")
    await bot_says(alice, room_id, bot, "are allowed here")
    await eve.send_text(room_id, "anyone?")
    await bot_says(eve, room_id, bot, "none of the bridge's Session accounts is an admin")
    await bot_says(eve, room_id, bot, "relay is off")  # and the message was not sent
    client = kind.clients.client(made.session_id)
    assert client is None or await client.membership(group) is None
