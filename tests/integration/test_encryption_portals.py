"""Group and community portals in encrypted rooms (README, Encryption), against real Synapse,
PostgreSQL and the devnet, with matrix-nio encrypting and decrypting: encrypted images both
ways (checked on Session by an independent group member / community client), a portal whose
room becomes encrypted after it was bridged (with ``allow`` on and off), and
``encryption.require`` refusing unencrypted messages in a portal that exists already.
"""

from __future__ import annotations

import io
from typing import Any

from nio import UploadResponse  # type: ignore[import-untyped]
from nio.crypto.attachments import decrypt_attachment  # type: ignore[import-untyped]

from bridge.config import Config
from bridge.core.portal.encryption_policy import NOW_ENCRYPTED_NOTICE
from bridge.db.records import PortalKind
from bridge.session.messages import Attachment, VisibleMessage
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, wait_for
from tests.integration.helpers import session_sees, start_bridge
from tests.integration.test_community_bridge import Community
from tests.integration.test_encryption import (
    ENCRYPTION,
    TIMEOUT,
    EncryptedUser,
    _has,
    alice,
    community,
    e2be_config,
)
from tests.integration.test_encryption_media import download
from tests.integration.test_encryption_settings import running
from tests.integration.test_group_outbound import _accepted, _from, _member_joins, _running
from tests.sessionnet.group_world import new_admin, new_member

__all__ = ["alice", "community", "e2be_config"]  # the fixtures this module uses

MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}


async def send_encrypted_image(user: EncryptedUser, room_id: str, png: bytes, name: str) -> None:
    """nio encrypts ``png``, uploads only its ciphertext and sends it with ``file``."""
    uploaded, keys = await user.client.upload(
        io.BytesIO(png), "image/png", name, encrypt=True, filesize=len(png)
    )
    assert isinstance(uploaded, UploadResponse), uploaded
    assert await download(user, uploaded.content_uri) != png
    content = {
        "msgtype": "m.image",
        "body": name,
        "info": {"mimetype": "image/png", "size": len(png)},
        "file": {**keys, "url": uploaded.content_uri},
    }
    await user.send_content(room_id, content)


async def gets_encrypted_file(user: EncryptedUser, room_id: str, sender: str, data: bytes) -> None:
    """``user`` gets a file from ``sender`` in an encrypted event, whose ciphertext (all the
    homeserver holds) decrypts to ``data``."""

    async def got_file() -> Any:
        await user.sync()
        return next((f for r, s, f in user.files if r == room_id and s == sender), None)

    event = await wait_for(got_file, "the encrypted file", TIMEOUT)
    assert event.decrypted, "the bridge sent it unencrypted"
    assert "url" not in event.source["content"], "a plaintext url next to the file"
    ciphertext = await download(user, event.url)
    assert data not in ciphertext
    assert decrypt_attachment(ciphertext, event.key["k"], event.hashes["sha256"], event.iv) == data


async def join_when_invited(env: DmEnv, user: EncryptedUser, group: str) -> str:
    async def room() -> str | None:
        portal = await env.app.repos.portals.get_by_key(PortalKind.GROUP, group)
        return portal.mxid if portal is not None else None

    room_id = str(await wait_for(room, "the group portal", TIMEOUT))

    async def joined() -> bool:
        resp = await user.client.join(room_id)
        return getattr(resp, "room_id", None) == room_id

    await wait_for(joined, "alice to join the group portal", TIMEOUT)
    return room_id


async def test_an_image_goes_both_ways_encrypted_in_an_encrypted_group_portal(
    e2be_config: Config, alice: EncryptedUser
) -> None:
    e2be_config.encryption.default = True  # the group portal is created encrypted
    async with running(e2be_config) as env:
        login = await env.app.logins.create_new(alice.user_id)
        ours = login.session_id
        admin = await new_admin(env.world, "Encrypted team")
        bob = await new_member(env.world, "Bob")
        try:
            await _member_joins(admin, bob, "Bob")
            await _running(env, ours)
            await admin.invite(login.identity.session_id, "Alice")
            group = admin.group_id.value
            room_id = await join_when_invited(env, alice, group)
            await _accepted(env, ours, group)
            await alice.sync()
            assert alice.client.rooms[room_id].encrypted

            # Matrix -> Session: Bob, an independent member, gets the image's own bytes.
            png = tiny_png()
            await send_encrypted_image(alice, room_id, png, "pixel.png")

            async def bob_got_it() -> Any:
                return next((e for e in _from(bob, ours) if e.content.attachments), None)

            got = await wait_for(bob_got_it, "Bob to get the image", TIMEOUT)
            (pointer,) = got.content.attachments
            assert await bob.dm.download_attachment(pointer) == png

            # Session -> Matrix: Bob's image, encrypted by the bridge, decrypted by nio.
            photo = tiny_png()
            await bob.groups.send_attachment(admin.group_id, photo, "photo.png", "image/png")
            ghost = env.app.ghosts.mxid_for(bob.identity.session_id.value)
            await gets_encrypted_file(alice, room_id, ghost, photo)
            assert alice.undecryptable == []
        finally:
            await bob.groups.stop()


async def bridge_room(
    user: EncryptedUser, bot: str, url: str, *, encrypted: bool, relay: bool = True
) -> str:
    """A room of ``user`` bridged to the community room at ``url`` (relay on)."""
    state = [ENCRYPTION] if encrypted else []
    created = await user.client.room_create(
        invite=[bot], initial_state=state, power_level_override={"users": {bot: 50}}
    )
    room_id = str(created.room_id)
    await wait_for(lambda: _has(user, room_id, {bot}), "the bot to join", TIMEOUT)
    await user.send(room_id, f"!session bridge {url}")
    await bot_told(user, room_id, bot, "now bridged")
    if relay:
        await user.send(room_id, "!session relay on")
        await bot_told(user, room_id, bot, "Relay is on")
    return room_id


async def bot_told(user: EncryptedUser, room_id: str, bot: str, text: str) -> None:
    async def told() -> bool:
        await user.sync()
        return any(s[0] == room_id and s[1] == bot and text in s[2] for s in user.seen)

    await wait_for(told, f"the bot to say {text!r}", TIMEOUT)


async def test_an_image_goes_both_ways_encrypted_in_an_encrypted_community_portal(
    e2be_config: Config, alice: EncryptedUser, community: Community
) -> None:
    app = await start_bridge(e2be_config, alice.user_id)
    try:
        bot = e2be_config.bot_mxid
        room_id = await bridge_room(alice, bot, community.url, encrypted=True)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)

        # Matrix -> Session (relayed): the community's file holds the image's own bytes.
        png = tiny_png()
        await send_encrypted_image(alice, room_id, png, "mine.png")

        async def posted() -> Any:
            for msg in await sam.recent(room, 50):
                content = msg.content
                attachments = content.attachments if isinstance(content, VisibleMessage) else ()
                if attachments and attachments[0].content_type == "image/png":
                    return attachments[0]
            return None

        sent = await wait_for(posted, "alice's image on Session", TIMEOUT)
        file_id = int((sent.url or "").rsplit("/", 1)[1])
        assert await sam.download(room, file_id) == png

        # Session -> Matrix: a community post's image, encrypted by the bridge for the room.
        photo = tiny_png()
        upload = await sam.upload(room, photo, "dot.png")
        pointer = Attachment(
            url=upload.url, size=len(photo), content_type="image/png", file_name="dot.png"
        )
        picture = VisibleMessage(body="a picture", attachments=(pointer,))
        await sam.post(room, picture, files=[upload.id])

        async def from_a_ghost() -> Any:
            await alice.sync()
            return next(
                (s for r, s, _ in alice.files if r == room_id and s != alice.user_id), None
            )

        sender = await wait_for(from_a_ghost, "the community's image", TIMEOUT)
        await gets_encrypted_file(alice, room_id, sender, photo)
        assert alice.undecryptable == []
    finally:
        await app.stop()


async def test_a_portal_that_becomes_encrypted_goes_on_encrypted_with_allow(
    e2be_config: Config, alice: EncryptedUser, community: Community
) -> None:
    app = await start_bridge(e2be_config, alice.user_id)
    try:
        bot = e2be_config.bot_mxid
        room_id = await bridge_room(alice, bot, community.url, encrypted=False)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)
        await sam.post(room, VisibleMessage(body="before encryption", profile=None))

        async def seen(text: str) -> tuple[str, str, str, bool] | None:
            await alice.sync()
            return next((s for s in alice.seen if s[0] == room_id and s[2] == text), None)

        before = await wait_for(lambda: seen("before encryption"), "the first post", TIMEOUT)
        assert before[3] is False

        resp = await alice.client.room_put_state(room_id, "m.room.encryption", MEGOLM)
        assert getattr(resp, "event_id", None), resp
        await alice.send(room_id, "encrypted from Matrix")  # nio encrypts: the room is
        await session_sees(sam, room, ": encrypted from Matrix$")
        await sam.post(room, VisibleMessage(body="after encryption", profile=None))
        after = await wait_for(lambda: seen("after encryption"), "the second post", TIMEOUT)
        assert after[3] is True, "the bridge still sends unencrypted in an encrypted room"
        assert not any(NOW_ENCRYPTED_NOTICE[:30] in s[2] for s in alice.seen)
        assert alice.undecryptable == []
    finally:
        await app.stop()


async def test_a_portal_that_becomes_encrypted_is_left_with_a_notice_without_allow(
    bridge_config: Config, alice: EncryptedUser, community: Community
) -> None:
    assert not bridge_config.encryption.allow
    app = await start_bridge(bridge_config, alice.user_id)
    try:
        bot = bridge_config.bot_mxid
        room_id = await bridge_room(alice, bot, community.url, encrypted=False, relay=False)
        resp = await alice.client.room_put_state(room_id, "m.room.encryption", MEGOLM)
        assert getattr(resp, "event_id", None), resp
        await bot_told(alice, room_id, bot, NOW_ENCRYPTED_NOTICE)
    finally:
        await app.stop()


async def test_with_require_an_unencrypted_message_in_a_portal_is_refused_with_a_notice(
    e2be_config: Config, alice: EncryptedUser, community: Community
) -> None:
    app = await start_bridge(e2be_config, alice.user_id)
    try:
        bot = e2be_config.bot_mxid
        # A portal bridged while require was off, in an unencrypted room.
        room_id = await bridge_room(alice, bot, community.url, encrypted=False)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)
        await alice.send(room_id, "while require was off")
        await session_sees(sam, room, ": while require was off$")
    finally:
        await app.stop()
    e2be_config.encryption.require = True
    app = await start_bridge(e2be_config, alice.user_id)
    try:
        await alice.send(room_id, "unencrypted under require")
        await bot_told(alice, room_id, bot, "only works in encrypted rooms")

        async def failed() -> bool:
            await alice.sync()
            return any(
                o[0] == room_id
                and o[2] == "com.beeper.message_send_status"
                and str(o[3].get("status")).startswith("FAIL")
                for o in alice.others
            )

        await wait_for(failed, "a failed send status", TIMEOUT)
        # Once the room is encrypted its messages are bridged again; the refused one never was
        # (the outbox sends in order, so it would be there before this one).
        resp = await alice.client.room_put_state(room_id, "m.room.encryption", MEGOLM)
        assert getattr(resp, "event_id", None), resp
        await alice.send(room_id, "encrypted under require")
        await session_sees(sam, room, ": encrypted under require$")
        bodies = [getattr(m.content, "body", "") or "" for m in await sam.recent(room, 50)]
        assert not any("unencrypted under require" in b for b in bodies), bodies
    finally:
        await app.stop()
