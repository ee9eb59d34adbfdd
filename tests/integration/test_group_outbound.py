"""Matrix → Session in a group portal, end to end: the bridge in process with the real Synapse
and PostgreSQL, a devnet group swarm, and a second member on the devnet (the project's own
GroupsClient under another identity) that checks what arrived, decrypted.

A Matrix user with a login that is a member of the group writes text, a reply, reactions (one
taken back), an edit, a redaction and a file; the other member sees exactly those. A user
without a login is refused with a notice while relay is off, and relayed by the bot
("Name: text", with the group's disappearing setting) once it is on.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from mautrix.client import Client
from mautrix.errors import MNotFound
from mautrix.types import (
    EventType,
    ImageInfo,
    MediaMessageEventContent,
    MessageType,
    RoomID,
    TextMessageEventContent,
    UserID,
)

from bridge.db.records import PortalKind
from bridge.ids import SessionID
from bridge.session.groups.events import (
    GroupContentDeletedEvent,
    GroupInviteEvent,
    GroupMessageEvent,
    GroupReactionEvent,
    GroupUnsendEvent,
)
from bridge.session.messages import Expiry, ExpiryMode, ReactionAction, VisibleMessage
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, MatrixUsers, room_events, wait_for
from tests.integration.helpers import bot_says, matrix_sees
from tests.sessionnet.group_admin import DevnetGroupAdmin
from tests.sessionnet.group_world import Member, new_admin, new_member

TIMEOUT = 30.0


async def _member_joins(admin: DevnetGroupAdmin, member: Member, name: str) -> None:
    await admin.invite(member.identity.session_id, name)
    await member.inbox.wait(GroupInviteEvent, timeout=TIMEOUT)
    await member.groups.accept(admin.group_id)


def _group_clients(env: DmEnv) -> Any:
    return env.app._group.clients  # the running GroupClients of the bridge


async def _portal_joined(env: DmEnv, user: Client, group: str) -> RoomID:
    """Wait for the group's portal (made when the login was invited) and join it: joining
    accepts the invite on Session."""

    async def room() -> str | None:
        portal = await env.app.repos.portals.get_by_key(PortalKind.GROUP, group)
        return portal.mxid if portal is not None else None

    room_id = RoomID(await wait_for(room, "the group portal", TIMEOUT))

    async def join() -> bool:
        try:
            await user.join_room(room_id)
        except Exception:  # the invite may not be there yet
            return False
        return True

    await wait_for(join, "the user to join the portal", TIMEOUT)
    return room_id


async def _running(env: DmEnv, session_id: str) -> None:
    async def found() -> bool:
        return _group_clients(env).client(session_id) is not None

    await wait_for(found, f"the group client of {session_id[:10]}", TIMEOUT)


async def _accepted(env: DmEnv, session_id: str, group: str) -> None:
    async def ready() -> bool:
        client = _group_clients(env).client(session_id)
        if client is None:
            return False
        membership = await client.membership(group)
        state = client.poller.state(group)
        return bool(membership and membership.accepted and state is not None and state.ready)

    await wait_for(ready, f"{session_id[:10]} to be a member of the group", TIMEOUT)


def _from(member: Member, session_id: str) -> list[Any]:
    """What ``member`` received from ``session_id``: visible messages, reactions, deletions."""
    kinds = (GroupMessageEvent, GroupReactionEvent, GroupUnsendEvent, GroupContentDeletedEvent)
    return [
        e
        for e in member.inbox.events
        if isinstance(e, kinds)
        and e.sender.value == session_id
        and (not isinstance(e, GroupMessageEvent) or isinstance(e.content, VisibleMessage))
    ]


async def test_a_members_matrix_messages_reach_the_other_members(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    world = dm_env.world
    alice = await matrix_users.new("alice")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    ours = login.session_id
    admin = await new_admin(world, "Team")
    bob = await new_member(world, "Bob")
    try:
        await _member_joins(admin, bob, "Bob")
        await _running(dm_env, ours)
        await admin.invite(login.identity.session_id, "Alice")
        group = admin.group_id.value
        room_id = await _portal_joined(dm_env, alice, group)
        await _accepted(dm_env, ours, group)

        # Bob writes first: the portal shows it (Session → Matrix), Alice will answer it.
        question = await bob.groups.send_text(admin.group_id, "who is there?")
        asked = await matrix_sees(alice, room_id, "^who is there\\?$")

        hello = await alice.send_text(room_id, "hello from Matrix")
        await alice.send_message(
            room_id,
            _reply(TextMessageEventContent(msgtype=MessageType.TEXT, body="me"), asked),
        )
        await alice.react(room_id, asked.event_id, "👍")
        wave = await alice.react(room_id, asked.event_id, "👋")
        await alice.redact(room_id, wave)  # taken back: removed on Session too
        edit = {
            "msgtype": "m.text",
            "body": "* hello, edited",
            "m.new_content": {"msgtype": "m.text", "body": "hello, edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": str(hello)},
        }
        await alice.send_message_event(room_id, EventType.ROOM_MESSAGE, edit)
        png = tiny_png()
        mxc = await alice.upload_media(png, mime_type="image/png", filename="pixel.png")
        image = MediaMessageEventContent(
            msgtype=MessageType.IMAGE,
            body="pixel.png",
            url=mxc,
            info=ImageInfo(mimetype="image/png", size=len(png)),
        )
        await alice.send_message(room_id, image)
        await alice.redact(room_id, hello)

        async def all_seen() -> bool:
            return any(isinstance(e, GroupContentDeletedEvent) for e in _from(bob, ours))

        await wait_for(all_seen, "Bob to see everything", TIMEOUT)
        got = _from(bob, ours)
        kinds = [type(e).__name__ for e in got]
        assert kinds == [
            "GroupMessageEvent",  # hello
            "GroupMessageEvent",  # the reply
            "GroupReactionEvent",  # 👍
            "GroupReactionEvent",  # 👋
            "GroupReactionEvent",  # 👋 removed
            "GroupMessageEvent",  # the edit
            "GroupMessageEvent",  # the file
            "GroupUnsendEvent",
            "GroupContentDeletedEvent",
        ], kinds
        first, reply, reaction, waved, unwaved, edited, file, unsend, deleted = got
        assert first.content.body == "hello from Matrix"
        assert reply.content.body == "me"
        assert reply.content.quote is not None
        assert reply.content.quote.timestamp == question.timestamp
        assert reply.content.quote.author == bob.identity.session_id.value
        assert reaction.reaction.emoji == "👍"
        assert reaction.reaction.target_timestamp == question.timestamp
        assert (waved.reaction.emoji, waved.reaction.action) == ("👋", ReactionAction.REACT)
        assert (unwaved.reaction.emoji, unwaved.reaction.action) == ("👋", ReactionAction.REMOVE)
        assert edited.content.body == "✏️ hello, edited"
        assert edited.content.quote is not None
        assert edited.content.quote.timestamp == first.timestamp
        (pointer,) = file.content.attachments
        assert await bob.dm.download_attachment(pointer) == png
        assert unsend.target_timestamp == first.timestamp
        assert deleted.message_hashes == (first.hash,)  # the storage hash the bridge kept
        assert not deleted.by_admin
    finally:
        await bob.groups.stop()


async def test_relay_refused_while_off_then_the_bot_posts_name_and_text(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    world, app = dm_env.world, dm_env.app
    alice = await matrix_users.new("alice")
    eve = await matrix_users.new("eve")
    await eve.set_displayname("Eve")
    login = await app.logins.create_new(str(alice.mxid))
    bot_id = _group_clients(dm_env).bot_session_id()
    admin = await new_admin(world, "Relayed")
    bob = await new_member(world, "Bob")
    try:
        await _member_joins(admin, bob, "Bob")
        await _running(dm_env, login.session_id)
        await admin.invite(login.identity.session_id, "Alice")
        group = admin.group_id.value
        room_id = await _portal_joined(dm_env, alice, group)
        await _accepted(dm_env, login.session_id, group)
        # The bot is a member too (accepted here directly: its invites wait for an admin).
        await admin.invite(SessionID.parse(bot_id), "Bridge")

        async def bot_invited() -> bool:
            client = _group_clients(dm_env).client(bot_id)
            return client is not None and await client.membership(group) is not None

        await wait_for(bot_invited, "the bot's invite", TIMEOUT)
        await _group_clients(dm_env).client(bot_id).accept(group)
        await _accepted(dm_env, bot_id, group)

        await alice.invite_user(room_id, UserID(eve.mxid))
        await eve.join_room(room_id)
        await eve.send_text(room_id, "can anyone hear me?")
        await bot_says(alice, room_id, app.config.bot_mxid, "no Session login and relay is off")
        portal = await app.repos.portals.get_by_key(PortalKind.GROUP, group)
        assert portal is not None
        await app.repos.portals.update(dataclasses.replace(portal, relay_enabled=True))
        # The group's disappearing-messages setting applies to what the bridge sends.
        admin.info = dataclasses.replace(admin.info, disappearing_timer=3600)
        await admin.push()

        async def timer_known() -> bool:
            info = _group_clients(dm_env).client(bot_id).info(group)
            return info is not None and info.disappearing_timer == 3600

        await wait_for(timer_known, "the bot to read the disappearing setting", TIMEOUT)

        async def topic_shows_timer() -> bool:
            try:
                state = await alice.get_state_event(room_id, EventType.ROOM_TOPIC)
            except MNotFound:
                return False
            return "Disappearing messages set to 1 hour after sending" in str(state.topic)

        # The room's topic shows the setting, as a direct chat's does.
        await wait_for(topic_shows_timer, "the topic to show the disappearing setting", TIMEOUT)
        await eve.send_text(room_id, "relayed hello")

        async def relayed() -> list[Any]:
            return [e for e in _from(bob, bot_id) if isinstance(e, GroupMessageEvent)]

        await wait_for(relayed, "Bob to see the relayed message", TIMEOUT)
        (message,) = await relayed()
        assert message.content.body == "Eve: relayed hello"
        assert message.content.expiry == Expiry(ExpiryMode.DELETE_AFTER_SEND, 3600)
        bodies = [
            e.content.body
            for e in bob.inbox.of(GroupMessageEvent)
            if isinstance(e.content, VisibleMessage)
        ]
        assert not any(re.search("can anyone hear me", b or "") for b in bodies)

        # Eve's reaction is sent by the bot; its echo (the bot's own reaction coming back
        # from the group) must not show on Matrix as a reaction of a ghost of the bot.
        target = await matrix_sees(alice, room_id, "relayed hello")
        await eve.react(room_id, target.event_id, "👍")

        async def bot_reacted() -> list[Any]:
            return [e for e in _from(bob, bot_id) if isinstance(e, GroupReactionEvent)]

        await wait_for(bot_reacted, "Bob to see the bot's reaction", TIMEOUT)
        (reaction,) = await bot_reacted()
        assert reaction.reaction.emoji == "👍"
        assert reaction.reaction.action == ReactionAction.REACT
        echo_key = f"group:{group}:{reaction.hash}"

        async def echo_handled() -> bool:
            return await app.repos.cursors.is_processed(echo_key)

        await wait_for(echo_handled, "the bridge to take the echo of its reaction", TIMEOUT)
        reactions = [
            e for e in await room_events(alice, str(room_id)) if str(e.type) == "m.reaction"
        ]
        assert [(str(e.sender), e.content.relates_to.key) for e in reactions] == [
            (str(eve.mxid), "👍")
        ]
    finally:
        await bob.groups.stop()


def _reply(content: TextMessageEventContent, to: Any) -> TextMessageEventContent:
    content.set_reply(to)
    return content
