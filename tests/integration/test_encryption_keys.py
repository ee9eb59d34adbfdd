"""Who gets the bridge's Megolm keys (README, Encryption), against real Synapse, PostgreSQL
and the devnet with matrix-nio clients: with ``allow_key_sharing`` a device that missed a key
asks the bot's device for it and gets it (for what the bridge sent, not for what others sent);
a member who left gets no keys for what is sent after.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from mautrix.types import Membership, RoomID, UserID
from nio import (
    MegolmEvent,
    RoomLeaveResponse,
    RoomMessageNotice,
    RoomMessageText,
    ToDeviceResponse,
)  # type: ignore[import-untyped]
from nio.crypto import OutgoingKeyRequest  # type: ignore[import-untyped]
from nio.exceptions import EncryptionError  # type: ignore[import-untyped]

from bridge.config import Config
from tests.integration.conftest import DmEnv, wait_for
from tests.integration.test_encryption import (
    ENCRYPTION,
    TIMEOUT,
    EncryptedUser,
    _has,
    alice,
    e2be_config,
    register,
    session_gets,
)
from tests.integration.test_encryption_settings import login_again, running

__all__ = ["alice", "e2be_config"]  # the fixtures this module uses


async def bridge_knows_device(env: DmEnv, user: EncryptedUser) -> None:
    assert env.app._encryption is not None
    store = env.app._encryption.crypto.machine.crypto_store

    async def knows() -> bool:
        devices = await store.get_devices(UserID(user.user_id))
        return devices is not None and user.client.device_id in devices

    await wait_for(knows, "the bridge to see the device", TIMEOUT)


async def ask_the_bot(user: EncryptedUser, event: MegolmEvent, bot: str, bot_device: str) -> None:
    """Send the bot's device an ``m.room_key_request`` for ``event``'s session.

    nio asks only its own user's devices and takes forwarded keys only from them (so do most
    clients); the test asks the bot itself and lets nio take what the bot's device forwards
    for this request, to show that the key the bridge sends is the one that decrypts."""
    request = event.as_key_request(
        bot, user.client.device_id, request_id=uuid.uuid4().hex, device_id=bot_device
    )
    olm = user.client.olm
    olm.outgoing_key_requests[event.session_id] = OutgoingKeyRequest(
        event.session_id, event.session_id, event.room_id, event.algorithm
    )
    olm._should_accept_forward = lambda sender, _key, ev: (
        sender == bot and ev.session_id in olm.outgoing_key_requests
    )
    resp = await user.client.to_device(request)
    assert isinstance(resp, ToDeviceResponse), resp


async def test_with_key_sharing_a_device_that_missed_a_key_gets_it_from_the_bot(
    e2be_config: Config, alice: EncryptedUser, tmp_path: Path
) -> None:
    e2be_config.encryption.allow_key_sharing = True
    async with running(e2be_config) as env:
        login = await env.app.logins.create_new(alice.user_id)
        tom, tom_inbox = await env.session_user("Tom")
        ghost = env.app.ghosts.mxid_for(tom.session_id.value)
        bot = env.app.config.bot_mxid
        assert env.app._encryption is not None
        bot_device = env.app._encryption.crypto.device_id
        created = await alice.client.room_create(
            is_direct=True, invite=[ghost], initial_state=[ENCRYPTION]
        )
        room_id = created.room_id
        await wait_for(lambda: _has(alice, room_id, {ghost, bot}), "the encrypted DM", TIMEOUT)
        await alice.send(room_id, "alice's own, before")
        await session_gets(tom_inbox, "alice's own, before")
        await tom.send_text(login.session_id, "the bridge's, before")
        await wait_for(
            lambda: alice.got(room_id, ghost, "the bridge's, before"), "decrypted", TIMEOUT
        )

        second = await login_again(alice, tmp_path / "alice-second-olm")
        try:
            await second.sync()
            await bridge_knows_device(env, second)

            def missed(sender: str) -> list[MegolmEvent]:
                return [e for e in second.megolm if e.room_id == room_id and e.sender == sender]

            async def both_missed() -> bool:
                await second.sync()
                return bool(missed(ghost)) and bool(missed(alice.user_id))

            await wait_for(both_missed, "the second device to miss both keys", TIMEOUT)
            theirs = missed(alice.user_id)[0]
            ours = {e.session_id: e for e in missed(ghost)}  # one event of each session
            # First a key the bridge must not forward (alice's first device made it), then the
            # bridge's own: Synapse delivers to-device messages in order, so when the last one
            # arrives the first would have too.
            await ask_the_bot(second, theirs, bot, bot_device)
            for event in ours.values():
                await ask_the_bot(second, event, bot, bot_device)

            def bodies() -> list[str]:
                readable = []
                for event in missed(ghost):
                    try:
                        plain = second.client.decrypt_event(event)
                    except EncryptionError:  # its key did not come (yet)
                        continue
                    if isinstance(plain, RoomMessageText | RoomMessageNotice):
                        readable.append(plain.body)
                return readable

            async def decrypted() -> bool:
                await second.sync()
                return "the bridge's, before" in bodies()

            await wait_for(decrypted, "the forwarded keys to decrypt", TIMEOUT)
            sessions = {s.id for s in second.client.olm.inbound_group_store}
            assert set(ours) <= sessions
            assert theirs.session_id not in sessions, "the bot forwarded another user's key"
        finally:
            await second.close()


async def membership(env: DmEnv, room_id: str, user: str) -> Membership | None:
    member = await env.app.appservice.state_store.get_member(RoomID(room_id), UserID(user))
    return member.membership if member is not None else None


async def test_a_member_who_left_gets_no_keys_for_later_messages(
    e2be_config: Config, alice: EncryptedUser, tmp_path: Path
) -> None:
    bob = EncryptedUser(*(await register("bob")), tmp_path / "bob-olm")
    try:
        await bob.sync()
        async with running(e2be_config) as env:
            login = await env.app.logins.create_new(alice.user_id)
            tom, _ = await env.session_user("Tom")
            ghost = env.app.ghosts.mxid_for(tom.session_id.value)
            bot = env.app.config.bot_mxid
            created = await alice.client.room_create(
                is_direct=True, invite=[ghost, bob.user_id], initial_state=[ENCRYPTION]
            )
            room_id = created.room_id
            await wait_for(lambda: _has(alice, room_id, {ghost, bot}), "the DM", TIMEOUT)
            resp = await bob.client.join(room_id)
            assert getattr(resp, "room_id", None) == room_id, resp

            async def bridge_sees(state: Membership) -> bool:
                return await membership(env, room_id, bob.user_id) == state

            await wait_for(lambda: bridge_sees(Membership.JOIN), "bob's join", TIMEOUT)
            await tom.send_text(login.session_id, "while bob is here")
            for user in (alice, bob):
                await wait_for(
                    lambda u=user: u.got(room_id, ghost, "while bob is here"),  # type: ignore[misc]
                    f"{user.user_id} to decrypt",
                    TIMEOUT,
                )
            first = bob.session_of["while bob is here"]

            left = await bob.client.room_leave(room_id)
            assert isinstance(left, RoomLeaveResponse), left
            await wait_for(lambda: bridge_sees(Membership.LEAVE), "bob's leave", TIMEOUT)
            await tom.send_text(login.session_id, "after bob left")
            await wait_for(
                lambda: alice.got(room_id, ghost, "after bob left"), "alice to decrypt", TIMEOUT
            )
            later = alice.session_of["after bob left"]
            assert later != first, "the session was not reset when bob left"
            # The bridge shares a session's key before it sends the first message of it, so
            # bob's next sync would carry it if it had been sent to him.
            await bob.sync()
            sessions = {s.id for s in bob.client.olm.inbound_group_store}
            assert first in sessions and later not in sessions
            assert alice.undecryptable == []
    finally:
        await bob.close()
