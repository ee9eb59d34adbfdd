"""End-to-bridge encryption against real Synapse, PostgreSQL/SQLite and the devnet, with a real
encrypted Matrix client (matrix-nio with its e2e extra, its Olm store in a temporary folder).

Synapse pushes to-device messages, device lists and one-time-key counts to the bridge
(scripts/services.sh sets its experimental MSC2409/MSC3202 features; README, Encryption).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomEncryptedMedia,
    RoomMessageNotice,
    RoomMessageText,
    SyncResponse,
    UnknownEvent,
)

from bridge.app import BridgeApp
from bridge.config import Config
from bridge.core.direct.chats import direct_key
from bridge.db.records import PortalKind
from tests.integration.conftest import DmEnv, require_env, use_devnet, wait_for
from tests.integration.test_community_bridge import Community
from tests.sessionnet.dm_setup import Inbox, dm_world
from tests.sessionnet.extras import start_community_and_files

TIMEOUT = 30.0
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


#: The password of every user :func:`register` made (to log in a second device).
PASSWORDS: dict[str, str] = {}


async def register(name: str) -> tuple[str, str, str]:
    """A new Matrix user: (user id, device id, access token)."""
    base_url = require_env("SMB_TEST_SYNAPSE_URL")
    secret = require_env("SMB_TEST_SHARED_SECRET")
    username = f"{name}-{uuid.uuid4().hex[:8]}"
    url = f"{base_url}/_synapse/admin/v1/register"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            nonce = (await resp.json())["nonce"]
        password = uuid.uuid4().hex
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(f"{nonce}\0{username}\0{password}\0notadmin".encode())
        body = {"nonce": nonce, "username": username, "password": password, "mac": mac.hexdigest()}
        async with http.post(url, json={**body, "admin": False}) as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.json()
    PASSWORDS[data["user_id"]] = password
    return data["user_id"], data["device_id"], data["access_token"]


class EncryptedUser:
    """An Element-like client: nio with Olm, syncing on demand, remembering what it saw."""

    def __init__(self, user_id: str, device_id: str, token: str, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.user_id = user_id
        self.client = AsyncClient(
            require_env("SMB_TEST_SYNAPSE_URL"),
            user_id,
            device_id=device_id,
            store_path=str(store),
            config=config,
        )
        self.client.restore_login(user_id, device_id, token)
        # (room id, sender, body, was it encrypted) of every message seen.
        self.seen: list[tuple[str, str, str, bool]] = []
        self.undecryptable: list[str] = []
        # The undecryptable events themselves (to ask for their keys).
        self.megolm: list[MegolmEvent] = []
        # The Megolm session id of every decrypted message, by its body.
        self.session_of: dict[str, str] = {}
        # (room id, sender, the event) of every encrypted file seen.
        self.files: list[tuple[str, str, Any]] = []
        # (room id, sender, type, content) of the other events seen (statuses...).
        self.others: list[tuple[str, str, str, dict[str, Any]]] = []
        self.token = token

    async def sync(self) -> None:
        resp = await self.client.sync(timeout=0)
        assert isinstance(resp, SyncResponse), resp
        for room_id, room in resp.rooms.join.items():
            for event in room.timeline.events:
                if isinstance(event, RoomMessageText | RoomMessageNotice):
                    self.seen.append((room_id, event.sender, event.body, event.decrypted))
                    if event.decrypted and event.session_id:
                        self.session_of[event.body] = event.session_id
                elif isinstance(event, UnknownEvent):
                    content = event.source.get("content", {})
                    self.others.append((room_id, event.sender, event.type, content))
                elif isinstance(event, RoomEncryptedMedia):
                    self.files.append((room_id, event.sender, event))
                elif isinstance(event, MegolmEvent):
                    self.undecryptable.append(event.event_id)
                    self.megolm.append(event)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())

    async def send(self, room_id: str, text: str) -> None:
        await self.send_content(room_id, {"msgtype": "m.text", "body": text})

    async def send_content(self, room_id: str, content: dict[str, Any]) -> None:
        """Send ``content`` (encrypted by nio: the room is) as an ``m.room.message``."""
        await self.sync()
        await self.client.joined_members(room_id)
        if self.client.should_query_keys:
            await self.client.keys_query()
        resp = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        assert getattr(resp, "event_id", None), resp

    async def members(self, room_id: str) -> set[str]:
        resp = await self.client.joined_members(room_id)
        return {m.user_id for m in getattr(resp, "members", [])}

    async def got(self, room_id: str, sender: str, text: str) -> bool:
        await self.sync()
        return any(seen[:3] == (room_id, sender, text) for seen in self.seen)

    async def close(self) -> None:
        await self.client.close()


@pytest.fixture
def e2be_config(bridge_config: Config) -> Config:
    bridge_config.encryption.allow = True
    bridge_config.encryption.decrypt_wait = 5.0
    return bridge_config


@pytest.fixture
async def e2be_env(e2be_config: Config) -> AsyncIterator[DmEnv]:
    async with dm_world(seed_http=True) as world:
        use_devnet(e2be_config, world)
        e2be_config.bridge.permissions = {"localhost": "user"}
        app = BridgeApp(e2be_config)
        await app.start()
        env = DmEnv(app, world)
        try:
            yield env
        finally:
            await env.app.stop()


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[EncryptedUser]:
    user = EncryptedUser(*(await register("alice")), tmp_path / "alice-olm")
    await user.sync()
    try:
        yield user
    finally:
        await user.close()


async def session_gets(inbox: Inbox, text: str) -> Any:
    async def find() -> Any:
        return next((e for e in inbox.messages if getattr(e.content, "body", "") == text), None)

    return await wait_for(find, f"Session to get {text!r}", TIMEOUT)


async def restart(env: DmEnv) -> None:
    config = env.app.config
    await env.app.stop()
    env.app = BridgeApp(config)
    await env.app.start()


async def test_encrypted_dm_opened_from_the_client_works_both_ways_and_after_restart(
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

    async def bridged() -> bool:
        return {ghost, bot} <= await alice.members(room_id)

    await wait_for(bridged, "the ghost and the bot to join the encrypted DM", TIMEOUT)
    key = direct_key(login.session_id, tom_id)
    portal = await env.app.repos.portals.get_by_key(PortalKind.DIRECT, key)
    assert portal is not None and portal.mxid == room_id

    # Matrix -> Session: nio encrypts, the bridge decrypts and sends to Session.
    await alice.send(room_id, "hello Tom, encrypted")
    got = await session_gets(tom_inbox, "hello Tom, encrypted")
    assert got.sender.value == login.session_id
    # Session -> Matrix: the bridge encrypts as the ghost, nio decrypts.
    await tom.send_text(login.session_id, "hi back, encrypted")
    await wait_for(
        lambda: alice.got(room_id, ghost, "hi back, encrypted"), "alice to decrypt", TIMEOUT
    )
    entry = next(s for s in alice.seen if s[2] == "hi back, encrypted")
    assert entry[3] is True, "the bridge sent it unencrypted"

    # The keys survive a restart: both ways still work.
    await restart(env)
    await alice.send(room_id, "after the restart")
    await session_gets(tom_inbox, "after the restart")
    await tom.send_text(login.session_id, "still encrypted")
    await wait_for(
        lambda: alice.got(room_id, ghost, "still encrypted"), "alice to decrypt", TIMEOUT
    )
    assert next(s for s in alice.seen if s[2] == "still encrypted")[3] is True
    assert alice.undecryptable == []


async def test_with_encryption_allowed_the_bot_device_is_kept_across_restarts(
    e2be_env: DmEnv,
) -> None:
    env = e2be_env
    assert env.app._encryption is not None
    first = env.app._encryption.crypto.device_id
    assert first
    await restart(env)
    assert env.app._encryption is not None
    assert env.app._encryption.crypto.device_id == first


async def test_a_message_the_bridge_cannot_decrypt_is_reported_to_its_sender(
    e2be_env: DmEnv, alice: EncryptedUser
) -> None:
    env = e2be_env
    await env.app.logins.create_new(alice.user_id)
    tom, tom_inbox = await env.session_user("Tom")
    ghost = env.app.ghosts.mxid_for(tom.session_id.value)
    bot = env.app.config.bot_mxid
    created = await alice.client.room_create(
        is_direct=True, invite=[ghost], initial_state=[ENCRYPTION]
    )
    room_id = created.room_id
    await wait_for(
        lambda: _has(alice, room_id, {ghost, bot}), "the bot to join the encrypted DM", TIMEOUT
    )
    # An event of a Megolm session whose keys never reach the bridge's device.
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEhAbogus",
        "device_id": alice.client.device_id,
        "sender_key": alice.client.olm.account.identity_keys["curve25519"],
        "session_id": "never-shared-session",
    }
    base_url = require_env("SMB_TEST_SYNAPSE_URL")
    url = f"{base_url}/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with aiohttp.ClientSession() as http, http.put(url, json=content, headers=headers) as r:
        assert r.status == 200, await r.text()
        event_id = (await r.json())["event_id"]

    async def told() -> bool:
        await alice.sync()
        notice = any(
            s[0] == room_id and s[1] == bot and "could not decrypt your message" in s[2]
            for s in alice.seen
        )
        status = any(
            o[0] == room_id
            and o[2] == "com.beeper.message_send_status"
            and str(o[3].get("status")).startswith("FAIL")
            and o[3].get("m.relates_to", {}).get("event_id") == event_id
            for o in alice.others
        )
        return notice and status

    await wait_for(told, "the bot to report the undecryptable message", TIMEOUT)
    # Nothing of it reached Session.
    assert all(getattr(m.content, "body", None) is None for m in tom_inbox.messages)


async def _has(user: EncryptedUser, room_id: str, members: set[str]) -> bool:
    return members <= await user.members(room_id)


async def test_kill_9_keeps_encrypted_dm_working_both_ways(tmp_path: Path) -> None:
    from bridge.session.keys import Identity
    from tests.integration.conftest import devnet_settings
    from tests.integration.helpers import BridgeProcess, write_process_config

    user = EncryptedUser(*(await register("alice")), tmp_path / "alice-olm")
    bot = "@sessionbot:localhost"
    try:
        await user.sync()
        async with dm_world() as world:
            extra: dict[tuple[str, str], Any] = {
                ("session", k): v for k, v in devnet_settings(world).items()
            }
            extra[("encryption", "allow")] = True
            config, address = await write_process_config(tmp_path, user.user_id, extra)
            bridge = BridgeProcess(config, address, tmp_path / "bridge.log")
            await bridge.start()
            try:
                # Log in through an (unencrypted) management room with the bot.
                identity = Identity.generate()
                ours = identity.session_id.value
                management = (await user.client.room_create(is_direct=True, invite=[bot])).room_id
                await wait_for(lambda: _has(user, management, {bot}), "the bot to join", TIMEOUT)
                await user.send(management, f"login {identity.phrase}")

                async def logged_in() -> bool:
                    await user.sync()
                    return any("Logged in as Session account" in s[2] for s in user.seen)

                await wait_for(logged_in, "the login", TIMEOUT)
                inbox = Inbox()
                tom = await world.client(inbox=inbox, start=False)
                await tom.set_profile("Tom")
                await tom.start()
                ghost = f"@session_{tom.session_id.value}:localhost"
                created = await user.client.room_create(
                    is_direct=True, invite=[ghost], initial_state=[ENCRYPTION]
                )
                room_id = created.room_id
                await wait_for(
                    lambda: _has(user, room_id, {ghost, bot}), "the encrypted DM", TIMEOUT
                )
                for round_ in range(2):
                    await user.send(room_id, f"m-{round_}")
                    await session_gets(inbox, f"m-{round_}")
                    await tom.send_text(ours, f"s-{round_}")
                    await wait_for(
                        lambda r=round_: user.got(room_id, ghost, f"s-{r}"),  # type: ignore[misc]
                        f"s-{round_} decrypted",
                        TIMEOUT,
                    )
                    await bridge.kill()
                    await bridge.start()
            except BaseException:
                print("BRIDGE LOG:", bridge.log.read_text()[-6000:])
                raise
            finally:
                assert await bridge.stop() == 0
    finally:
        await user.close()
    assert user.undecryptable == []
    assert all(s[3] for s in user.seen if s[2].startswith("s-"))


@pytest.fixture
async def community() -> AsyncIterator[Community]:
    info, cleanup = await start_community_and_files()
    room = info["rooms"][0]
    url = f"{info['community']}/{room}?public_key={info['community_pubkey']}"
    async with aiohttp.ClientSession() as http:
        yield Community(url, http)
    await cleanup()


async def test_community_portal_in_an_encrypted_room_works_both_ways(
    e2be_config: Config, alice: EncryptedUser, community: Community
) -> None:
    from bridge.session.messages import VisibleMessage
    from tests.integration.helpers import session_sees, start_bridge

    app = await start_bridge(e2be_config, alice.user_id)
    try:
        bot = e2be_config.bot_mxid
        created = await alice.client.room_create(
            invite=[bot], initial_state=[ENCRYPTION], power_level_override={"users": {bot: 50}}
        )
        room_id = created.room_id
        await wait_for(lambda: _has(alice, room_id, {bot}), "the bot to join", TIMEOUT)
        # The command itself is encrypted: the bridge decrypts it before the router.
        await alice.send(room_id, f"!session bridge {community.url}")

        async def bridged() -> bool:
            await alice.sync()
            return any(s[1] == bot and "now bridged" in s[2] for s in alice.seen)

        await wait_for(bridged, "the bot to bridge the encrypted room", TIMEOUT)
        sam = community.member()
        room = community.url.rsplit("/", 1)[1].split("?")[0]
        await sam.join(room)
        await sam.post(room, VisibleMessage(body="hello from the community", profile=None))

        async def decrypted() -> bool:
            await alice.sync()
            return any(s[2] == "hello from the community" and s[3] for s in alice.seen)

        await wait_for(decrypted, "alice to decrypt the community post", TIMEOUT)
        # Relay (alice is the bridge admin): her decrypted message reaches Session.
        await alice.send(room_id, "!session relay on")

        async def relay_on() -> bool:
            await alice.sync()
            return any(s[1] == bot and "Relay is on" in s[2] for s in alice.seen)

        await wait_for(relay_on, "relay to be on", TIMEOUT)
        await alice.send(room_id, "hello from encrypted Matrix")
        await session_sees(sam, room, ": hello from encrypted Matrix$")
        assert alice.undecryptable == []
    finally:
        await app.stop()
