"""End-to-bridge encryption: the bridge bot's Olm device and what it does (README, Encryption).

One device, the bot's, logged in with ``m.login.application_service`` (its device id kept in
the crypto store), holds the bridge's Olm account. Matrix users' clients share their Megolm
keys with it because the bot is a member of every encrypted portal; it decrypts what they send,
and encrypts what the bridge sends there (ghosts send the ciphertext as themselves, as
mautrix's bridges do). The encryption traffic comes in appservice transactions:
MSC2409 to-device messages and MSC3202 device lists and one-time-key counts
(docs/matrix-side.md §1.4, §5), handed here by :class:`bridge.matrix.appservice.
BridgeAppService`.

This module knows nothing of SQL: the store comes opened from ``bridge.db.crypto_store``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, cast

from mautrix.appservice import IntentAPI
from mautrix.client import Client
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.crypto import CryptoStore, OlmMachine, StateStore
from mautrix.errors import (
    DecryptionError,
    EncryptionError,
    MatrixRequestError,
    MNotFound,
    SessionNotFound,
)
from mautrix.types import (
    JSON,
    ASToDeviceEvent,
    DeviceID,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EventType,
    LoginType,
    Membership,
    MemberStateEventContent,
    MessageStatusReason,
    RoomEncryptionStateEventContent,
    RoomID,
    StateEvent,
    TrustState,
    UserID,
)

from bridge.keyed_locks import KeyedLocks
from bridge.matrix.e2ee_trust import try_cross_sign
from bridge.matrix.send import MSS_EVENT_TYPE, derived_txn_id, send_notice, send_status_content

log = logging.getLogger("bridge.matrix.e2ee")

DEVICE_NAME = "Session bridge"


class Undecryptable(Exception):
    """An encrypted event whose keys did not come in time (or that is broken)."""


@dataclass(frozen=True)
class CryptoSettings:
    allow_key_sharing: bool = False
    disable_device_change_key_rotation: bool = False
    decrypt_wait: float = 20.0


class SharedStateStore(StateStore):
    """mautrix's crypto ``StateStore`` over the bridge's in-memory Matrix state store."""

    def __init__(self, store: MemoryStateStore) -> None:
        self._store = store

    async def is_encrypted(self, room_id: RoomID) -> bool:
        return bool(await self._store.is_encrypted(room_id))

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        return await self._store.get_encryption_info(room_id)

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        # Joined or invited only: one who left or was banned shares no room any more.
        here = (Membership.JOIN, Membership.INVITE)
        return [
            room_id
            for room_id, members in self._store.members.items()
            if user_id in members
            and members[user_id].membership in here
            and room_id in self._store.encryption
        ]


class BridgeCrypto:
    """The bot's Olm machine: login, traffic handlers, encrypt and decrypt."""

    def __init__(
        self,
        *,
        homeserver: str,
        bot_mxid: str,
        as_token: str,
        store: CryptoStore,
        state_store: MemoryStateStore,
        ghost_regex: str,
        settings: CryptoSettings,
    ) -> None:
        self._as_token = as_token
        self._store = store
        self._state = state_store
        self._ghost = re.compile(ghost_regex)
        self.settings = settings
        self.client = Client(mxid=UserID(bot_mxid), base_url=homeserver, state_store=state_store)
        self.machine = OlmMachine(self.client, store, SharedStateStore(state_store))
        self.machine.allow_key_share = self._allow_key_share
        self.machine.disable_device_change_key_rotation = (
            settings.disable_device_change_key_rotation
        )
        self.machine.share_keys_min_trust = TrustState.UNVERIFIED
        self._share_locks = KeyedLocks()
        self._unencrypted: set[str] = set()
        self.ready = asyncio.Event()

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    async def start(self) -> None:
        """Log the bot's device in (the same device as last time) and publish its keys."""
        device_id = await self._store.get_device_id()
        self.client.api.token = self._as_token  # authenticates the appservice login only
        await self.client.login(
            login_type=LoginType.APPSERVICE,
            device_name=DEVICE_NAME,
            device_id=device_id,
            store_access_token=True,
            update_hs_url=False,
        )
        await self.machine.load()
        if not device_id:
            await self._store.put_device_id(self.client.device_id)
            log.info("The bridge bot has the new encryption device %s", self.client.device_id)
        else:
            log.info("The bridge bot uses its encryption device %s", device_id)
        await self.machine.share_keys()
        await try_cross_sign(self.machine, self._as_token)
        self.ready.set()

    async def close(self) -> None:
        await self.client.api.session.close()

    # --- traffic from appservice transactions (docs/matrix-side.md §1.4) ---------------------

    async def handle_to_device(self, events: list[dict[str, Any]]) -> None:
        await self.ready.wait()
        for raw in events:
            try:
                event = cast(ASToDeviceEvent, ASToDeviceEvent.deserialize(cast(JSON, raw)))
                await self.machine.handle_as_to_device_event(event)
            except Exception:
                log.exception("A to-device event of type %r failed", raw.get("type"))

    async def handle_device_lists(self, lists: dict[str, Any]) -> None:
        await self.ready.wait()
        await self.machine.handle_as_device_lists(DeviceLists.deserialize(cast(JSON, lists)))

    async def handle_otk_counts(self, counts: dict[str, Any]) -> None:
        await self.ready.wait()
        parsed = {
            UserID(user): {
                DeviceID(device): DeviceOTKCount.deserialize(count)
                for device, count in devices.items()
            }
            for user, devices in counts.items()
            if user == self.client.mxid and isinstance(devices, dict)
        }
        if parsed:
            await self.machine.handle_as_otk_counts(parsed)

    # --- decrypting what Matrix users send ---------------------------------------------------

    async def decrypt(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The plaintext event of the encrypted ``raw``, waiting up to ``decrypt_wait`` s for
        its keys; :class:`Undecryptable` otherwise."""
        await self.ready.wait()
        try:
            event = EncryptedEvent.deserialize(cast(JSON, raw))
        except Exception as e:
            raise Undecryptable(f"malformed encrypted event: {e}") from e
        try:
            try:
                decrypted = await self.machine.decrypt_megolm_event(event)
            except SessionNotFound as e:
                got = await self.machine.wait_for_session(
                    event.room_id, e.session_id, timeout=self.settings.decrypt_wait
                )
                if not got:
                    raise Undecryptable("the keys of its session never came") from e
                decrypted = await self.machine.decrypt_megolm_event(event)
        except DecryptionError as e:
            raise Undecryptable(f"{type(e).__name__}: {e}") from e
        plain: dict[str, Any] = decrypted.serialize()
        plain.pop("mautrix", None)
        return plain

    # --- encrypting what the bridge sends ----------------------------------------------------

    async def is_encrypted(self, room_id: str) -> bool:
        known = await self._state.is_encrypted(RoomID(room_id))
        if known is not None:
            return known
        if room_id in self._unencrypted:
            return False
        try:
            content = await self.client.get_state_event(RoomID(room_id), EventType.ROOM_ENCRYPTION)
        except MNotFound:
            self._unencrypted.add(room_id)
            return False
        except MatrixRequestError:
            return False  # the bot is not in the room: it could not encrypt there anyway
        if isinstance(content, RoomEncryptionStateEventContent):
            await self._state.set_encryption_info(RoomID(room_id), content)
        return True

    def room_became_encrypted(self, room_id: str) -> None:
        self._unencrypted.discard(room_id)

    async def encrypt(
        self, room_id: str, event_type: EventType, content: Any
    ) -> dict[str, Any] | None:
        """``content`` encrypted for ``room_id``, or None if the room is not encrypted."""
        if not await self.is_encrypted(room_id):
            return None
        await self.ready.wait()
        room = RoomID(room_id)
        try:
            encrypted = await self.machine.encrypt_megolm_event(room, event_type, content)
        except EncryptionError:
            async with self._share_locks.of(room_id):
                try:
                    encrypted = await self.machine.encrypt_megolm_event(room, event_type, content)
                except EncryptionError:
                    await self.machine.share_group_session(room, await self._members(room))
                    encrypted = await self.machine.encrypt_megolm_event(room, event_type, content)
        serialized: dict[str, Any] = encrypted.serialize()
        return serialized

    async def _members(self, room_id: RoomID) -> list[UserID]:
        """The room's joined and invited real users (the ghosts have no devices): a user
        invited to a portal the bridge just created gets the keys of its first messages."""
        events = await self.client.get_members(room_id, not_membership=Membership.LEAVE)
        wanted = (Membership.JOIN, Membership.INVITE)
        return [
            UserID(str(event.state_key))
            for event in events
            if isinstance(event.content, MemberStateEventContent)
            and event.content.membership in wanted
            and not self._ghost.match(str(event.state_key))
        ]

    async def handle_member(self, raw: dict[str, Any]) -> None:
        """A membership change of a real user in an encrypted room: mautrix drops the room's
        outbound Megolm session (a user who left gets no keys of what follows; one who came
        gets the next session)."""
        user = str(raw.get("state_key"))
        if user == self.client.mxid or self._ghost.match(user):
            return
        room_id = str(raw.get("room_id"))
        if not await self.is_encrypted(room_id):
            return
        await self.ready.wait()
        event = StateEvent.deserialize(cast(JSON, raw))
        await self.machine.handle_member_event(event)

    async def _allow_key_share(self, device: Any, request: Any) -> bool:
        """``allow_key_sharing``: a device of a user who is in the room (joined or invited)
        gets the keys of what the bridge sent there, never of what others sent; a blacklisted
        device nothing. False ignores the request."""
        if not self.settings.allow_key_sharing or device.trust == TrustState.BLACKLISTED:
            return False
        session = await self._store.get_group_session(request.room_id, request.session_id)
        account = self.machine.account
        if session is None or account is None or session.sender_key != account.identity_key:
            return False
        shared = await SharedStateStore(self._state).find_shared_rooms(device.user_id)
        return bool(request.room_id in shared)


UNDECRYPTABLE_NOTICE = (
    "The bridge could not decrypt your message (its keys never reached the bridge's device), "
    "so it was not sent to Session. Please send it again."
)


async def decrypt_or_report(
    crypto: BridgeCrypto, bot: IntentAPI, raw: dict[str, Any]
) -> dict[str, Any] | None:
    """``raw`` decrypted, or None after telling its sender (a notice and a failed send status)
    that it could not be: an undecryptable message is never silently lost."""
    try:
        return await crypto.decrypt(raw)
    except Undecryptable as e:
        why = str(e)
    event_id, room_id = str(raw.get("event_id")), str(raw.get("room_id"))
    log.warning("Could not decrypt %s in %s: %s", event_id, room_id, why)
    txn = derived_txn_id("undecryptable", event_id)
    await send_notice(bot, room_id, UNDECRYPTABLE_NOTICE, txn_id=txn)
    status = send_status_content(
        event_id, ok=False, reason=MessageStatusReason.UNDECRYPTABLE, message=why[:200]
    )
    status_txn = derived_txn_id("mss-undecryptable", event_id)
    await bot.send_message_event(RoomID(room_id), MSS_EVENT_TYPE, status, txn_id=status_txn)
    return None
