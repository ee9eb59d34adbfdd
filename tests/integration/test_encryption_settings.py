"""``encryption.default`` and ``encryption.require``, and a Matrix user's second device
(README, Encryption), against real Synapse, PostgreSQL and the devnet with matrix-nio clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.core.direct.chats import UNENCRYPTED_DM_REFUSAL
from tests.integration.conftest import DmEnv, require_env, use_devnet, wait_for
from tests.integration.test_encryption import (
    ENCRYPTION,
    PASSWORDS,
    TIMEOUT,
    EncryptedUser,
    _has,
    alice,
    e2be_config,
    session_gets,
)
from tests.sessionnet.dm_setup import dm_world

__all__ = ["alice", "e2be_config"]  # the fixtures this module uses


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[DmEnv]:
    async with dm_world(seed_http=True) as world:
        use_devnet(config, world)
        config.bridge.permissions = {"localhost": "user"}
        app = BridgeApp(config)
        await app.start()
        env = DmEnv(app, world)
        try:
            yield env
        finally:
            await env.app.stop()


async def join_invites(user: EncryptedUser) -> None:
    await user.sync()
    for room_id in list(user.client.invited_rooms):
        await user.client.join(room_id)


async def test_with_default_the_bridge_creates_direct_chats_encrypted(
    e2be_config: Config, alice: EncryptedUser
) -> None:
    e2be_config.encryption.default = True
    async with running(e2be_config) as env:
        login = await env.app.logins.create_new(alice.user_id)
        tom, _ = await env.session_user("Tom")
        ghost = env.app.ghosts.mxid_for(tom.session_id.value)
        # The first message creates the portal and is sent while alice is only invited.
        await tom.send_text(login.session_id, "first, while you were invited")
        room_id = str(await env.portal_room(login.session_id, tom.session_id.value))

        async def joined() -> bool:
            await join_invites(alice)
            return room_id in alice.client.rooms and alice.client.rooms[room_id].encrypted

        await wait_for(joined, "alice in the encrypted portal", TIMEOUT)
        await wait_for(
            lambda: alice.got(room_id, ghost, "first, while you were invited"),
            "alice to decrypt the first message",
            TIMEOUT,
        )
        assert all(s[3] for s in alice.seen if s[0] == room_id and s[1] == ghost)
        assert alice.undecryptable == []


async def test_with_require_an_unencrypted_direct_chat_is_refused_with_a_message(
    e2be_config: Config, alice: EncryptedUser
) -> None:
    e2be_config.encryption.require = True
    async with running(e2be_config) as env:
        await env.app.logins.create_new(alice.user_id)
        tom, _ = await env.session_user("Tom")
        ghost = env.app.ghosts.mxid_for(tom.session_id.value)
        created = await alice.client.room_create(is_direct=True, invite=[ghost])
        room_id = created.room_id

        async def refused() -> bool:
            told = await alice.got(room_id, ghost, UNENCRYPTED_DM_REFUSAL)
            return told and ghost not in await alice.members(room_id)

        await wait_for(refused, "the ghost to explain and leave", TIMEOUT)
        portal = await env.app.repos.portals.get_by_mxid(room_id)
        assert portal is None or portal.unbridged_at is not None


async def login_again(user: EncryptedUser, store: Path) -> EncryptedUser:
    """A second device of ``user`` (a password login, with an Olm store of its own)."""
    url = f"{require_env('SMB_TEST_SYNAPSE_URL')}/_matrix/client/v3/login"
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": PASSWORDS[user.user_id],
    }
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        data = await resp.json()
    return EncryptedUser(user.user_id, data["device_id"], data["access_token"], store)


async def test_a_second_device_gets_the_keys_of_new_messages(
    e2be_config: Config, alice: EncryptedUser, tmp_path: Path
) -> None:
    async with running(e2be_config) as env:
        login = await env.app.logins.create_new(alice.user_id)
        tom, tom_inbox = await env.session_user("Tom")
        ghost = env.app.ghosts.mxid_for(tom.session_id.value)
        bot = env.app.config.bot_mxid
        created = await alice.client.room_create(
            is_direct=True, invite=[ghost], initial_state=[ENCRYPTION]
        )
        room_id = created.room_id
        await wait_for(lambda: _has(alice, room_id, {ghost, bot}), "the encrypted DM", TIMEOUT)
        await tom.send_text(login.session_id, "before the second device")
        await wait_for(
            lambda: alice.got(room_id, ghost, "before the second device"), "decrypted", TIMEOUT
        )

        second = await login_again(alice, tmp_path / "alice-second-olm")
        try:
            await second.sync()  # uploads its device keys: Synapse tells the bridge (MSC3202)
            assert env.app._encryption is not None
            store = env.app._encryption.crypto.machine.crypto_store

            async def bridge_knows_it() -> bool:
                devices = await store.get_devices(alice.user_id)  # type: ignore[arg-type]
                return devices is not None and second.client.device_id in devices

            await wait_for(bridge_knows_it, "the bridge to see the second device", TIMEOUT)
            await tom.send_text(login.session_id, "after the second device")
            for device in (second, alice):
                await wait_for(
                    lambda d=device: d.got(room_id, ghost, "after the second device"),  # type: ignore[misc]
                    f"device {device.client.device_id} to decrypt the new message",
                    TIMEOUT,
                )
            # (The second device cannot read what came before it: keys are not shared back.)
            assert next(s for s in second.seen if s[2] == "after the second device")[3] is True
            assert alice.undecryptable == []
            # And the second device's own messages reach Session.
            await second.send(room_id, "from the second device")
            await session_gets(tom_inbox, "from the second device")
        finally:
            await second.close()
