"""What Session users see of the identities the bridge runs: a logged-in Matrix user's name
(and its changes), and the bot's picture. Real Synapse and PostgreSQL/SQLite, the devnet's
storage nodes and file server, our own SessionClient as the Session user."""

from __future__ import annotations

from typing import Any

from mautrix.types import UserID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.session.messages import MessageRequestResponse, Profile, VisibleMessage
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, MatrixUsers, use_devnet, wait_for
from tests.integration.test_direct_chats import joined_portal, session_gets
from tests.sessionnet.dm_setup import DmWorld, Inbox, dm_world

TIMEOUT = 15.0


def name_of(content: Any) -> str | None:
    profile = getattr(content, "profile", None)
    return profile.display_name if isinstance(profile, Profile) else None


def body_is(text: str) -> Any:
    return lambda c: isinstance(c, VisibleMessage) and c.body == text


async def test_a_login_never_shows_its_matrix_name(
    dm_env: DmEnv, matrix_users: MatrixUsers
) -> None:
    """A login's profile is its account's UserProfile config (docs/user-configs.md §4); a new
    account has none, so its messages carry no profile at all (a picture-less profile would
    erase the owner's avatar), whatever the Matrix name and its changes."""
    alice = await matrix_users.new("alice")
    await alice.set_displayname("Alice Liddell")
    login = await dm_env.app.logins.create_new(str(alice.mxid))
    sam, inbox = await dm_env.session_user("Sam")
    ours = login.session_id

    await sam.send_text(ours, "hello?")
    room_id = await joined_portal(dm_env, alice, ours, sam.session_id.value)
    await alice.send_text(room_id, "first")
    accepted = await session_gets(
        inbox, "the acceptance", lambda c: isinstance(c, MessageRequestResponse)
    )
    first = await session_gets(inbox, "the first answer", body_is("first"))
    assert accepted.content.profile is None and first.content.profile is None

    await alice.set_displayname("Alice in Wonderland")

    async def renamed_in_portal() -> bool:
        member = await alice.get_state_event(room_id, "m.room.member", UserID(alice.mxid))
        return member.displayname == "Alice in Wonderland"

    await wait_for(renamed_in_portal, "the new name in the portal", TIMEOUT)
    await alice.send_text(room_id, "second")
    second = await session_gets(inbox, "the second answer", body_is("second"))
    assert second.content.profile is None


async def bot_picture(app: BridgeApp, world: DmWorld, name: str) -> tuple[Profile, bytes]:
    """The profile a new Session user sees on the bot's auto-reply, and its picture."""
    inbox = Inbox()
    user = await world.client(inbox=inbox, start=False)
    await user.set_profile(name)
    await user.start()
    await user.send_text((await app.logins.bot_login()).session_id, "hello?")
    reply = await session_gets(
        inbox, "the auto-reply", lambda c: "Session bridge" in (getattr(c, "body", "") or "")
    )
    profile = reply.content.profile
    assert isinstance(profile, Profile) and profile.avatar_url is not None
    return profile, await user.download_avatar(profile)


async def test_the_bot_avatar_is_the_session_picture_of_the_bot_identity(
    bridge_config: Config, matrix_users: MatrixUsers
) -> None:
    admin = await matrix_users.new("admin")
    png = tiny_png()
    mxc = await admin.upload_media(png, mime_type="image/png", filename="bot.png")
    bridge_config.appservice.bot_avatar = str(mxc)
    async with dm_world() as world:
        use_devnet(bridge_config, world)
        app = BridgeApp(bridge_config)
        await app.start()
        try:
            profile, picture = await bot_picture(app, world, "Sam")
        finally:
            await app.stop()
        assert picture == png
        assert profile.display_name == bridge_config.appservice.bot_displayname

        # After a restart with the same setting, the picture is not uploaded again.
        app = BridgeApp(bridge_config)
        await app.start()
        try:
            again, picture = await bot_picture(app, world, "Tom")
        finally:
            await app.stop()
        assert picture == png
        assert (again.avatar_url, again.avatar_key) == (profile.avatar_url, profile.avatar_key)
