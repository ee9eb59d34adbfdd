"""The Session profiles of the identities the bridge runs (§2.13 of docs/session-protocol.md).

A login's identity shows its owner's Matrix display name: the global name when its client
starts, then the name of each of the owner's member events in their direct chats (a change of
the global name reaches every room as one). Session learns a profile only from the messages
that carry it, so the client's profile is all there is to keep current: no request is made.

The bot's identity shows ``appservice.bot_displayname`` and the picture of
``appservice.bot_avatar``, uploaded to the file server once per change of that setting: what
was uploaded is remembered in the key-value table and reused after a restart.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from bridge.core.convert.names import clean_name
from bridge.db.repos.kv import KVRepo
from bridge.matrix.reads import MediaDownload, global_display_name
from bridge.session.client import SessionClient
from bridge.session.errors import SessionError
from bridge.session.messages import Profile

log = logging.getLogger("bridge.core.direct.profiles")

BOT_AVATAR_KEY = "session-bot-avatar"


class SessionProfiles:
    """Names and the bot's picture, as Session users see them."""

    def __init__(self, bot: IntentAPI, kv: KVRepo, download: MediaDownload) -> None:
        self._bot = bot
        self._kv = kv
        self._download = download

    async def owner_name(self, mxid: str) -> str | None:
        """The Matrix user's global display name, for their login's profile (without control
        characters, escapes or bidi overrides: Session users read it)."""
        name = await global_display_name(self._bot, mxid)
        return clean_name(name) or None if name is not None else None

    @staticmethod
    async def update_name(client: SessionClient, name: str | None) -> None:
        """Show ``name`` from now on (a no-op when it is already shown); a Matrix name, so it
        is cleaned first."""
        name = clean_name(name or "") or None
        current = client.profile.display_name if client.profile is not None else None
        if name and name != current:
            await client.set_profile(name)
            log.info("Session name of %s is now %r", client.session_id.value[:10], name)

    async def bot_profile(self, name: str, avatar: str) -> Profile:
        """The bot identity's profile at start: its name, and the picture uploaded for
        ``avatar`` (an mxc URI) if that is the one uploaded before."""
        stored = await self._stored()
        if stored is not None and stored.get("mxc") == avatar:
            try:
                key = bytes.fromhex(stored["key"])
                return Profile(name, str(stored["url"]), key, int(stored["updated"]))
            except (KeyError, TypeError, ValueError):
                log.warning("The stored Session picture of the bot is unreadable; uploading again")
        return Profile(display_name=name)

    async def refresh_bot_avatar(self, client: SessionClient, avatar: str) -> None:
        """Upload ``avatar`` as the bot's picture unless it is the one already uploaded
        (``""`` removes the picture)."""
        stored = await self._stored()
        if (stored.get("mxc") if stored else "") == avatar:
            return
        name = client.profile.display_name if client.profile is not None else None
        if not avatar:
            await client.set_profile(name, None)
            await self._kv.delete(BOT_AVATAR_KEY)
            return
        try:
            data = await self._download(avatar)
            profile = await client.set_profile(name, data)
        except (MatrixRequestError, MatrixConnectionError, SessionError) as e:
            log.warning("The bot's Session picture was not set (%s): %s", avatar, e)
            return
        except Exception:  # a download or upload failure must not stop the bridge
            log.exception("The bot's Session picture was not set (%s)", avatar)
            return
        assert profile.avatar_url is not None and profile.avatar_key is not None
        value = {
            "mxc": avatar,
            "url": profile.avatar_url,
            "key": profile.avatar_key.hex(),
            "updated": profile.updated_seconds or int(time.time()),
        }
        await self._kv.set(BOT_AVATAR_KEY, json.dumps(value))
        log.info("The bot's Session picture is now %s", avatar)

    async def _stored(self) -> dict[str, Any] | None:
        raw = await self._kv.get(BOT_AVATAR_KEY)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
