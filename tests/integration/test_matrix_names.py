"""What Session users see of Matrix users in community rooms, and what Matrix users get when
Session users mention them: real Synapse and PostgreSQL/SQLite, the devnet's community server,
Session users made with the project's own community client (as a Session app reads posts)."""

from __future__ import annotations

import re
from typing import Any

from mautrix.client import Client
from mautrix.types import RoomID, UserID

from bridge.config import Config
from bridge.session.blinding import blind15_id
from bridge.session.messages import Profile, VisibleMessage
from bridge.session.sogs.models import CommunityMessage
from tests.integration.conftest import CommunityDevnet, MatrixUsers, wait_for
from tests.integration.helpers import (
    bot_says,
    bridged_room,
    matrix_event,
    open_management_room,
    session_sees,
    start_bridge,
)


def profile_name(post: CommunityMessage) -> str | None:
    content = post.content
    profile = content.profile if isinstance(content, VisibleMessage) else None
    return profile.display_name if isinstance(profile, Profile) else None


def body(post: CommunityMessage) -> str | None:
    return post.content.body if isinstance(post.content, VisibleMessage) else None


async def opened_portal(user: Client, bot: str, url: str) -> RoomID:
    """A portal room the bot created with `open` for ``user``, who accepted the invite."""
    management = await open_management_room(user, bot)
    await user.send_text(management, f"open {url}")
    answer = await bot_says(user, management, bot, "Created")
    found = re.search(r"https://matrix.to/#/(![^)\s]+)", answer)
    assert found is not None, answer
    room_id = RoomID(found.group(1))

    async def join() -> bool:
        try:
            await user.join_room(room_id)
        except Exception:  # the invite may not be there yet
            return False
        return True

    await wait_for(join, "the user to join the opened portal")
    return room_id


async def renamed(user: Client, room_id: RoomID, name: str) -> None:
    """Wait until the user's new name is their member event in the room."""

    async def done() -> bool:
        member = await user.get_state_event(room_id, "m.room.member", UserID(user.mxid))
        return bool(member.displayname == name)

    await wait_for(done, f"the name {name!r} in the room")


async def test_session_sees_the_current_matrix_name_of_the_opener(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    await alice.set_displayname("Alice Liddell")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await opened_portal(alice, bot, devnet.url)
        sam = await devnet.member()
        template = bridge_config.bridge.relay.message_template

        # Relayed: the opener's display name, not their mxid; the post is the bot's, with the
        # bot's name as its profile.
        await alice.send_text(room_id, "!session relay on")
        await bot_says(alice, room_id, bot, "Relay is on")
        await alice.send_text(room_id, "hello from the opener")
        relayed = await session_sees(sam, devnet.room, "hello from the opener$")
        assert body(relayed) == template.format(
            displayname="Alice Liddell", message="hello from the opener"
        )
        assert profile_name(relayed) == bridge_config.appservice.bot_displayname

        # A new Matrix name reaches Session with the next message, without a restart.
        await alice.set_displayname("Alice in Wonderland")
        await renamed(alice, room_id, "Alice in Wonderland")
        await alice.send_text(room_id, "after the rename")
        after = await session_sees(sam, devnet.room, "after the rename$")
        assert body(after) == template.format(
            displayname="Alice in Wonderland", message="after the rename"
        )

        # With her own Session login, her posts carry her current name as their profile.
        await app.logins.create_new(str(alice.mxid))
        await alice.send_text(room_id, "as myself")
        mine = await session_sees(sam, devnet.room, "^as myself$")
        assert profile_name(mine) == "Alice in Wonderland"
        await alice.set_displayname("Alice")
        await renamed(alice, room_id, "Alice")
        await alice.send_text(room_id, "renamed again")
        again = await session_sees(sam, devnet.room, "^renamed again$")
        assert profile_name(again) == "Alice"
    finally:
        await app.stop()


async def test_a_session_mention_of_a_logged_in_user_pills_that_user(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    await alice.set_displayname("Admin Person")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridged_room(alice, bot, devnet.url)
        login = await app.logins.create_new(str(alice.mxid))
        sam = await devnet.member()
        # What `whoami` shows alice, and what Session users see as her id in this community.
        blinded = blind15_id(login.identity, sam.server.pubkey).value
        await alice.send_text(room_id, "!session whoami")
        await bot_says(alice, room_id, bot, f"`{blinded}`")

        await sam.post(devnet.room, VisibleMessage(body=f"hi @{blinded}, welcome"))

        def welcome(event: Any) -> bool:
            return str(event.type) == "m.room.message" and "welcome" in str(
                event.content.serialize().get("body", "")
            )

        mention = (await matrix_event(alice, room_id, "the mention", welcome)).content.serialize()
        assert mention["m.mentions"] == {"user_ids": [str(alice.mxid)]}
        pill = f'<a href="https://matrix.to/#/{alice.mxid}">Admin Person</a>'
        assert pill in mention["formatted_body"]
        assert mention["body"] == "hi Admin Person, welcome"

        # No ghost stands for her id, not even when a Matrix client asks about that user.
        ghost = UserID(app.ghosts.mxid_for(blinded))
        stranger = blind15_id((await devnet.member()).identity, sam.server.pubkey).value
        other = await alice.create_room()
        await alice.invite_user(other, ghost)
        await alice.invite_user(other, UserID(app.ghosts.mxid_for(stranger)))

        async def stranger_registered() -> bool:
            record = await app.repos.ghosts.get(stranger)
            return record is not None and record.registered

        # Synapse asks about one room's invitees in order: the first answer came before.
        await wait_for(stranger_registered, "the homeserver to ask about the second invitee")
        assert await app.repos.ghosts.get(blinded) is None
    finally:
        await app.stop()
