"""The Session profile of a bridge-made identity (docs/migration.md §7), published as a Session
app does (docs/session-protocol.md §2.13, docs/user-configs.md): the picture encrypted and
uploaded to the file server, name and picture written to the identity's UserProfile config,
and the same profile carried on every message it sends.

The name is the Matrix display name through ``migration.made_identity_name``; the picture is
the Matrix avatar, uploaded again only when it changed (what was uploaded is kept in the kv
table, as for the bot's picture). A later change of the Matrix name or avatar (a member event
of the user) is published again (:meth:`MadeProfiles.refresh`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.core.made_ids import MadeIdentity, session_name
from bridge.db.repos.kv import KVRepo
from bridge.keyed_locks import KeyedLocks
from bridge.session import dm_media
from bridge.session.dm_media import FileTransfer
from bridge.session.messages import Profile
from bridge.session.poller import MemoryPollState
from bridge.session.snode.rpc import SnodeClient
from bridge.session.userconfig import views
from bridge.session.userconfig.sync import UserConfigs

log = logging.getLogger("bridge.core.made_ids_profile")

#: (mxid) → (global display name, avatar mxc URI), either None when unset or unreadable.
ReadProfile = Callable[[str], Awaitable[tuple[str | None, str | None]]]
Download = Callable[[str], Awaitable[bytes]]


def profile_key(session_id: str) -> str:
    return f"made-id:profile:{session_id}"


class MadeProfiles:
    """Publishes and remembers the profiles of bridge-made identities."""

    def __init__(
        self,
        *,
        kv: KVRepo,
        snode: SnodeClient,
        files: FileTransfer,
        read_profile: ReadProfile,
        download: Download,
        name_template: str,
    ) -> None:
        self._kv = kv
        self._snode = snode
        self._files = files
        self._read_profile = read_profile
        self._download = download
        self._template = name_template
        self._cache: dict[str, Profile] = {}
        self._locks = KeyedLocks()  # one publish per identity at a time

    async def profile(self, made: MadeIdentity, name: str | None = None) -> Profile:
        """What ``made``'s messages carry: ``name`` (the Session name of the message's
        Matrix name) or the published one, and the published picture."""
        stored = self._cache.get(made.session_id) or _parse(
            await self._kv.get(profile_key(made.session_id))
        )
        if stored is None:
            return Profile(display_name=name)
        self._cache[made.session_id] = stored
        return Profile(name or stored.display_name, stored.avatar_url, stored.avatar_key)

    async def publish(self, made: MadeIdentity) -> Profile:
        """Read the Matrix name and avatar, upload the picture if it changed, write the
        UserProfile config; the profile now shown."""
        async with self._lock(made.session_id):
            displayname, avatar = await self._read_profile(made.mxid)
            name = session_name(self._template, displayname or "", made.mxid)
            return await self._publish(made, name, avatar, await self._stored(made))

    async def refresh(self, made: MadeIdentity) -> Profile | None:
        """Publish again if the Matrix name or avatar differs from the published ones (a
        member event of the user said something changed); the new profile, or None."""
        async with self._lock(made.session_id):
            displayname, avatar = await self._read_profile(made.mxid)
            name = session_name(self._template, displayname or "", made.mxid)
            old = await self._stored(made)
            if old and old.get("name") == name and old.get("mxc") == avatar:
                return None
            log.info("The Matrix profile of bridge-made %s changed", made.session_id[:10])
            return await self._publish(made, name, avatar, old)

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.of(session_id)

    async def _stored(self, made: MadeIdentity) -> dict[str, Any]:
        raw = await self._kv.get(profile_key(made.session_id))
        try:
            old = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return old if isinstance(old, dict) else {}

    async def _publish(
        self, made: MadeIdentity, name: str, avatar: str | None, old: dict[str, Any]
    ) -> Profile:
        url, key = old.get("url"), bytes.fromhex(old["key"]) if old.get("key") else None
        if avatar != old.get("mxc"):
            url, key = None, None
            if avatar:
                try:
                    url, key = await dm_media.upload_avatar(
                        self._files, await self._download(avatar)
                    )
                except Exception as e:  # a profile without a picture is still a profile
                    log.warning("No Session picture for %s: %s", made.session_id[:10], e)
                    avatar = None
        value: dict[str, Any] = {"name": name, "mxc": avatar, "url": url}
        value["key"] = key.hex() if key is not None else None
        await self._kv.set(profile_key(made.session_id), json.dumps(value))
        profile = Profile(name, url, key, int(time.time()))
        self._cache[made.session_id] = profile
        await self._write_config(made, profile)
        return profile

    async def _write_config(self, made: MadeIdentity, profile: Profile) -> None:
        configs = UserConfigs(made.identity, self._snode, _KvConfigs(self._kv), MemoryPollState())
        picture = None
        if profile.avatar_url and profile.avatar_key:
            picture = (profile.avatar_url, profile.avatar_key)
        updated = profile.updated_seconds or int(time.time())
        try:
            await configs.edit(
                views.USER_PROFILE,
                lambda data: views.set_user_profile(data, profile.display_name, picture, updated),
            )
        except Exception as e:  # shown on messages anyway; written again at the next publish
            log.warning("UserProfile of %s not written: %s", made.session_id[:10], e)

    async def forget(self, made: MadeIdentity) -> None:
        """Drop what is kept of ``made``'s profile and user configs (it is deleted)."""
        self._cache.pop(made.session_id, None)
        await self._kv.delete(profile_key(made.session_id))
        for namespace in views.NAMESPACES:
            await self._kv.delete(f"made-id:config:{made.session_id}:{namespace}")


class _KvConfigs:
    """The identity's user config states in the kv table (its seqno survives restarts)."""

    def __init__(self, kv: KVRepo) -> None:
        self._kv = kv

    async def load_user_config(self, account: str, namespace: int) -> str | None:
        return await self._kv.get(f"made-id:config:{account}:{namespace}")

    async def save_user_config(self, account: str, namespace: int, value: str) -> None:
        await self._kv.set(f"made-id:config:{account}:{namespace}", value)


def _parse(raw: str | None) -> Profile | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
        key = bytes.fromhex(value["key"]) if value.get("key") else None
        return Profile(value.get("name"), value.get("url"), key)
    except (ValueError, KeyError, TypeError):
        return None
