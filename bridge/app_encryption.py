"""Wiring of end-to-bridge encryption into the app (README, Encryption).

Imported by ``bridge.app`` only when ``encryption.allow`` is on, since ``mautrix.crypto`` needs
python-olm (the ``e2be`` extra). The store is opened, and the sends wrapped, before the
appservice creates any intent; the bot's device logs in once the homeserver answers.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from mautrix.appservice import IntentAPI

from bridge.config import Config
from bridge.core.secrets import derive_pickle_key, parse_secrets_key
from bridge.db.crypto_store import CryptoStoreHandle, open_crypto_store
from bridge.matrix import e2ee_sends
from bridge.matrix import media as matrix_media
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.e2ee import BridgeCrypto, CryptoSettings, decrypt_or_report
from bridge.matrix.e2ee_media import AttachmentCipher
from bridge.matrix.state_store import MemoryBridgeStateStore

log = logging.getLogger("bridge.e2be")

ENCRYPTED = "m.room.encrypted"
MEMBER = "m.room.member"


class Encryption:
    """The bot's Olm machine with its store, as the app uses them."""

    def __init__(self, handle: CryptoStoreHandle, crypto: BridgeCrypto) -> None:
        self.handle = handle
        self.crypto = crypto

    @classmethod
    async def open(cls, config: Config, appservice: BridgeAppService, ghost_regex: str) -> Any:
        pickle_key = derive_pickle_key(parse_secrets_key(config.bridge.secrets_key))
        handle = await open_crypto_store(config.database.url, pickle_key)
        enc = config.encryption
        crypto = BridgeCrypto(
            homeserver=config.homeserver.address,
            bot_mxid=config.bot_mxid,
            as_token=config.appservice.as_token,
            store=handle.store,
            state_store=cast(MemoryBridgeStateStore, appservice.state_store),
            ghost_regex=ghost_regex,
            settings=CryptoSettings(
                allow_key_sharing=enc.allow_key_sharing,
                disable_device_change_key_rotation=enc.disable_device_change_key_rotation,
                decrypt_wait=enc.decrypt_wait,
            ),
        )
        e2ee_sends.install(crypto)
        matrix_media.install(AttachmentCipher(crypto.is_encrypted))
        return cls(handle, crypto)

    async def start(self, appservice: BridgeAppService) -> None:
        await self.crypto.start()
        appservice.bind_crypto(self.crypto)

    async def plaintext(self, bot: IntentAPI, raw: dict[str, Any]) -> dict[str, Any] | None:
        """``raw`` as the router should see it (None: it could not be decrypted, and its
        sender was told)."""
        if raw.get("type") == MEMBER and isinstance(raw.get("state_key"), str):
            try:
                await self.crypto.handle_member(raw)
            except Exception:  # the next send shares a session anyway; log, go on
                log.exception("The membership change in %s was not applied", raw.get("room_id"))
        if raw.get("type") != ENCRYPTED or raw.get("state_key") is not None:
            return raw
        return await decrypt_or_report(self.crypto, bot, raw)

    async def stop(self) -> None:
        e2ee_sends.uninstall()
        matrix_media.uninstall()
        try:
            await self.crypto.close()
        finally:
            await self.handle.close()
