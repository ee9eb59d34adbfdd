"""Encrypted attachments both ways in an encrypted DM (README, Encryption), against real
Synapse, PostgreSQL and the devnet, with matrix-nio encrypting and decrypting the files.

Matrix -> Session: nio encrypts an image, uploads the ciphertext and sends ``file`` (key, iv,
hash) in a Megolm event; Session receives the image's own bytes. Session -> Matrix: the bridge
encrypts the image, uploads only ciphertext and sends ``file``; nio decrypts it to the bytes
Session sent.
"""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from nio import UploadResponse  # type: ignore[import-untyped]
from nio.crypto.attachments import decrypt_attachment  # type: ignore[import-untyped]

from bridge.core.direct.chats import direct_key
from bridge.db.records import PortalKind
from tests.images import tiny_png
from tests.integration.conftest import DmEnv, require_env, wait_for
from tests.integration.test_encryption import (
    ENCRYPTION,
    TIMEOUT,
    EncryptedUser,
    _has,
    alice,
    e2be_config,
    e2be_env,
)

__all__ = ["alice", "e2be_config", "e2be_env"]  # the fixtures this module uses


async def download(user: EncryptedUser, mxc: str) -> bytes:
    """The bytes the homeserver stores at ``mxc`` (authenticated media)."""
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    base = require_env("SMB_TEST_SYNAPSE_URL")
    url = f"{base}/_matrix/client/v1/media/download/{server}/{media_id}"
    headers = {"Authorization": f"Bearer {user.token}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_an_image_goes_both_ways_encrypted_in_an_encrypted_dm(
    e2be_env: DmEnv, alice: EncryptedUser
) -> None:
    env = e2be_env
    login = await env.app.logins.create_new(alice.user_id)
    tom, tom_inbox = await env.session_user("Tom")
    tom_id = tom.session_id.value
    ghost = env.app.ghosts.mxid_for(tom_id)
    bot = env.app.config.bot_mxid
    created = await alice.client.room_create(
        is_direct=True, invite=[ghost], initial_state=[ENCRYPTION]
    )
    room_id = created.room_id
    await wait_for(lambda: _has(alice, room_id, {ghost, bot}), "the encrypted DM", TIMEOUT)
    portal = await env.app.repos.portals.get_by_key(
        PortalKind.DIRECT, direct_key(login.session_id, tom_id)
    )
    assert portal is not None and portal.mxid == room_id

    # Matrix -> Session: nio encrypts the file; the homeserver holds only its ciphertext.
    png = tiny_png()
    uploaded, keys = await alice.client.upload(
        io.BytesIO(png), "image/png", "pixel.png", encrypt=True, filesize=len(png)
    )
    assert isinstance(uploaded, UploadResponse), uploaded
    assert keys is not None
    assert await download(alice, uploaded.content_uri) != png
    file = {**keys, "url": uploaded.content_uri}
    content = {
        "msgtype": "m.image",
        "body": "pixel.png",
        "info": {"mimetype": "image/png", "size": len(png)},
        "file": file,
    }
    await alice.send_content(room_id, content)

    async def got_image() -> Any:
        return next((m for m in tom_inbox.messages if getattr(m.content, "attachments", ())), None)

    sent = await wait_for(got_image, "Session to get the image", TIMEOUT)
    (attachment,) = sent.content.attachments
    assert attachment.file_name == "pixel.png"
    assert await tom.download_attachment(attachment) == png

    # Session -> Matrix: the bridge encrypts; nio decrypts to the same bytes.
    photo = tiny_png()
    await tom.send_attachment(login.session_id, photo, "photo.png", "image/png")

    async def got_file() -> Any:
        await alice.sync()
        return next((f for r, s, f in alice.files if r == room_id and s == ghost), None)

    event = await wait_for(got_file, "alice to get the encrypted image", TIMEOUT)
    assert event.decrypted, "the bridge sent it unencrypted"
    assert "url" not in event.source["content"], "a plaintext url next to the file"
    ciphertext = await download(alice, event.url)
    assert ciphertext != photo and photo not in ciphertext
    plain = decrypt_attachment(ciphertext, event.key["k"], event.hashes["sha256"], event.iv)
    assert plain == photo
    assert alice.undecryptable == []
