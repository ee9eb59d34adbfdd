"""The Session profiles of the identities the bridge runs (§2.13 of docs/session-protocol.md).

A login's identity shows its owner's Matrix display name: the global name when its client
starts, then the name of each of the owner's member events in their direct chats (a change of
the global name reaches every room as one). Session learns a profile only from the messages
that carry it, so the client's profile is all there is to keep current: no request is made.

The bot's identity shows ``appservice.bot_displayname`` and the picture of
``appservice.bot_avatar``, uploaded to the file server once per change of that setting: what
was uploaded is remembered in the key-value table and reused after a restart. The file server
drops files after a while (14 days by default), so a picture used for
:data:`AVATAR_RENEW_AFTER_S` is renewed (``POST /file/{id}/extend``), or uploaded again when
the server cannot renew it, as desktop does (docs/session-protocol.md §2.13, §7.1).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from bridge.core.convert.names import clean_name
from bridge.core.portal.failures import is_transient
from bridge.db.repos.kv import KVRepo
from bridge.matrix.reads import MediaDownload, global_display_name
from bridge.session.client import SessionClient
from bridge.session.errors import SessionError
from bridge.session.messages import Profile

log = logging.getLogger("bridge.core.direct.profiles")

BOT_AVATAR_KEY = "session-bot-avatar"
#: Age (seconds since its upload or last renewal) at which the bot's picture is renewed:
#: desktop's 12 days, ahead of the file server's usual 14-day expiry.
AVATAR_RENEW_AFTER_S = 12 * 86_400

# Renews a file-server URL's expiry; raises when it cannot (the file is gone, no such route).
Renew = Callable[[str], Awaitable[object]]


class SessionProfiles:
    """Names and the bot's picture, as Session users see them."""

    def __init__(
        self,
        bot: IntentAPI,
        kv: KVRepo,
        download: MediaDownload,
        renew: Renew | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bot = bot
        self._kv = kv
        self._download = download
        self._renew = renew
        self._clock = clock

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
            await self.keep_bot_avatar(client, avatar)
            return
        if not avatar:
            await client.set_profile(_name(client), None)
            await self._kv.delete(BOT_AVATAR_KEY)
            return
        await self._upload_bot_avatar(client, avatar)

    async def keep_bot_avatar(self, client: SessionClient, avatar: str) -> str:
        """Keep the bot's uploaded picture from expiring (module docstring): nothing while it
        is younger than :data:`AVATAR_RENEW_AFTER_S`, then renew it on the file server, or
        upload it again if the server cannot. Returns what it did (``none``, ``fresh``,
        ``renewed``, ``uploaded``, ``later``); a failure that may pass waits for the next
        call."""
        stored = await self._stored()
        if not avatar or stored is None or stored.get("mxc") != avatar:
            return "none"
        since = stored.get("renewed", stored.get("updated"))
        now = self._clock()
        if isinstance(since, int | float) and now - since < AVATAR_RENEW_AFTER_S:
            return "fresh"
        if self._renew is not None:
            try:
                await self._renew(str(stored.get("url")))
            except Exception as e:
                if is_transient(e):
                    log.info("The bot's Session picture could not be renewed now: %s", e)
                    return "later"
                log.info("The file server did not renew the bot's Session picture: %s", e)
            else:
                await self._kv.set(BOT_AVATAR_KEY, json.dumps({**stored, "renewed": int(now)}))
                log.info("Renewed the bot's Session picture on the file server")
                return "renewed"
        return "uploaded" if await self._upload_bot_avatar(client, avatar) else "later"

    async def _upload_bot_avatar(self, client: SessionClient, avatar: str) -> bool:
        """Upload ``avatar`` as the bot's picture and remember it; False if that failed."""
        name = _name(client)
        try:
            data = await self._download(avatar)
            profile = await client.set_profile(name, data)
        except (MatrixRequestError, MatrixConnectionError, SessionError) as e:
            log.warning("The bot's Session picture was not set (%s): %s", avatar, e)
            return False
        except Exception:  # a download or upload failure must not stop the bridge
            log.exception("The bot's Session picture was not set (%s)", avatar)
            return False
        assert profile.avatar_url is not None and profile.avatar_key is not None
        value = {
            "mxc": avatar,
            "url": profile.avatar_url,
            "key": profile.avatar_key.hex(),
            "updated": profile.updated_seconds or int(time.time()),
            "renewed": int(self._clock()),  # uploaded: the file server's clock starts now
        }
        await self._kv.set(BOT_AVATAR_KEY, json.dumps(value))
        log.info("The bot's Session picture is now %s", avatar)
        return True

    async def _stored(self) -> dict[str, Any] | None:
        raw = await self._kv.get(BOT_AVATAR_KEY)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _name(client: SessionClient) -> str | None:
    return client.profile.display_name if client.profile is not None else None
