"""Ghosts on the real Synapse: query_user on invite, names and avatars a Matrix client sees."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from mautrix.client import Client
from mautrix.errors import MatrixRequestError
from mautrix.types import ContentURI, Membership, MemberStateEventContent, RoomID, UserID

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.core.convert.names import short_id
from bridge.core.ghosts import GhostManager, GhostProfile
from bridge.db.records import GhostRecord
from bridge.db.repos.ghosts import GhostRepo
from bridge.session.avatars import encrypt_avatar
from bridge.session.files import FileNotFound
from bridge.session.messages import Profile, VisibleMessage
from bridge.session.sogs.client import CommunityClient
from tests.images import tiny_png
from tests.integration.conftest import CommunityDevnet, MatrixUsers, wait_for
from tests.integration.helpers import bridged_room, matrix_sees, start_bridge


def new_session_id() -> str:
    return "05" + secrets.token_hex(32)


async def member_state(client: Client, room_id: RoomID, mxid: str) -> Membership | None:
    for event in await client.get_members(room_id):
        if event.state_key == mxid and isinstance(event.content, MemberStateEventContent):
            return event.content.membership
    return None


async def ghost_registered(app: BridgeApp, session_id: str) -> GhostRecord | None:
    record = await GhostRepo(app.db).get(session_id)
    return record if record is not None and record.registered and record.name_set else None


async def test_inviting_a_ghost_registers_it_through_query_user(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    session_id = new_session_id()
    ghost = UserID(running_bridge.ghosts.mxid_for(session_id))
    room_id = await alice.create_room()
    await alice.invite_user(room_id, ghost)
    # Synapse asks the appservice about an unknown user in its namespace before it pushes the
    # invite to it (docs/matrix-side.md §1.5), after the invite itself has been accepted.
    record = await wait_for(
        lambda: ghost_registered(running_bridge, session_id), "query_user to register the ghost"
    )
    assert record.mxid == ghost
    assert await member_state(alice, room_id, ghost) == Membership.INVITE
    profile = await alice.get_profile(ghost)
    assert profile.displayname == f"{short_id(session_id)} (Session)"

    # The ghost exists: it can accept the invite.
    await running_bridge.appservice.intent.user(ghost).join_room_by_id(room_id)

    async def joined() -> bool:
        return await member_state(alice, room_id, ghost) == Membership.JOIN

    await wait_for(joined, "the ghost to join")


async def test_query_user_refuses_what_is_not_a_ghost(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    domain = running_bridge.config.homeserver.domain
    bad = UserID(f"@session_03{secrets.token_hex(32)}:{domain}")  # a group id
    good_id = new_session_id()
    room_id = await alice.create_room()
    await alice.invite_user(room_id, bad)
    await alice.invite_user(room_id, UserID(running_bridge.ghosts.mxid_for(good_id)))
    # Synapse handles one room's events in order: once the second invitee is registered, the
    # query about the first one has been answered.
    await wait_for(lambda: ghost_registered(running_bridge, good_id), "the second ghost")
    # Synapse answers 404 (M_NOT_FOUND, or M_UNKNOWN "No row found") for a user without a profile.
    with pytest.raises(MatrixRequestError) as caught:
        await alice.get_profile(bad)
    assert caught.value.http_status == 404, caught.value


async def test_profile_name_and_avatar_reach_matrix_clients(
    running_bridge: BridgeApp, matrix_users: MatrixUsers
) -> None:
    alice = await matrix_users.new("alice")
    key = secrets.token_bytes(32)
    image = tiny_png()
    url = f"http://files.test/file/{secrets.token_hex(8)}"
    files = {url: encrypt_avatar(image, key)}
    downloads: list[str] = []

    async def download(file_url: str) -> bytes:
        downloads.append(file_url)
        if file_url not in files:
            raise FileNotFound("file not found", status=404)
        return files[file_url]

    config = running_bridge.config
    manager = GhostManager(
        repo=GhostRepo(running_bridge.db),
        intent_for=lambda mxid: running_bridge.appservice.intent.user(UserID(mxid)),
        username_template=config.bridge.username_template,
        displayname_template=config.bridge.displayname_template,
        domain=config.homeserver.domain,
        downloader=download,
    )
    session_id = new_session_id()
    ghost = await manager.ensure(session_id, GhostProfile("Alice \u202e🌸", url, key))
    mxid = UserID(ghost.mxid)

    async def profile_shown() -> tuple[str, str] | None:
        profile = await alice.get_profile(mxid)
        if profile.displayname == "Alice 🌸 (Session)" and profile.avatar_url:
            return profile.displayname, str(profile.avatar_url)
        return None

    _, avatar = await wait_for(profile_shown, "the ghost's name and avatar")
    assert avatar == ghost.record.avatar_mxc
    assert avatar.startswith(f"mxc://{config.homeserver.domain}/")
    assert await alice.download_media(ContentURI(avatar)) == image

    # The same profile again changes nothing; a new name is applied, the avatar is kept.
    await manager.ensure(session_id, GhostProfile("Alice \u202e🌸", url, key))
    assert downloads == [url]
    await manager.ensure(session_id, GhostProfile("Alicia", url, key))

    async def renamed() -> bool:
        profile = await alice.get_profile(mxid)
        return profile.displayname == "Alicia (Session)" and str(profile.avatar_url) == avatar

    await wait_for(renamed, "the ghost's new name")
    assert downloads == [url]


async def test_same_named_session_users_only_the_later_gets_a_suffix(
    bridge_config: Config, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    alice = await matrix_users.new("alice")
    app = await start_bridge(bridge_config, str(alice.mxid))
    try:
        room_id = await bridged_room(alice, bridge_config.bot_mxid, devnet.url)
        first, second = await devnet.member(), await devnet.member()
        sam = Profile(display_name="Sam")

        async def sender_name(client: CommunityClient, text: str) -> tuple[str, str | None]:
            await client.post(devnet.room, VisibleMessage(body=text, profile=sam))
            event = await matrix_sees(alice, room_id, f"^{text}$")
            return str(event.sender), await alice.get_displayname(UserID(str(event.sender)))

        first_ghost, name = await sender_name(first, "the first Sam")
        assert name == "Sam (Session)"
        second_ghost, name = await sender_name(second, "the second Sam")
        second_id = app.ghosts.session_id_for(second_ghost)
        assert second_id is not None
        assert name == f"Sam (Session) ({short_id(second_id)})"
        # Both write again: the earlier keeps the plain name, the later keeps its suffix.
        assert await sender_name(first, "the first Sam again") == (first_ghost, "Sam (Session)")
        assert (await sender_name(second, "the second Sam again"))[1] == name

        # Same-named Session users whose first messages are handled at the same time (each
        # login's direct chats and each community server are read concurrently): one keeps
        # the plain name, the others get their short ids, and writing again changes nothing.
        toms = [new_session_id() for _ in range(4)]

        async def names() -> dict[str, str | None]:
            return {t: await alice.get_displayname(UserID(app.ghosts.mxid_for(t))) for t in toms}

        await asyncio.gather(*(app.ghosts.ensure(t, GhostProfile("Tom")) for t in toms))
        named = await names()
        plain = [t for t, shown in named.items() if shown == "Tom (Session)"]
        assert len(plain) == 1, named
        for tom, shown in named.items():
            assert tom in plain or shown == f"Tom (Session) ({short_id(tom)})", named
        await asyncio.gather(*(app.ghosts.ensure(t, GhostProfile("Tom")) for t in toms))
        assert await names() == named
    finally:
        await app.stop()
