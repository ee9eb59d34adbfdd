"""The user configs of every login (docs/user-configs.md): what the bridge reads from, and
writes to, the account its owner keeps using on their phone.

:class:`LoginConfigs` runs one :class:`~bridge.session.userconfig.sync.UserConfigs` per login
(started and stopped with its Session client, polled in the shared swarm batches) and answers
the direct-chat code: the login's profile comes from UserProfile (never from Matrix), blocked
contacts are not bridged, a message request is accepted only when the Matrix user answers, a
read on Matrix marks the chat read on the phone, and the group portals read and add
UserGroups entries (:meth:`LoginConfigs.groups_joined`, :meth:`LoginConfigs.group_joined`).
State is kept in the ``kv`` table (:class:`KvUserConfigStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bridge.db.repos.kv import KVRepo
from bridge.session.client import SessionClient
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.messages import Profile
from bridge.session.poller import PollStateStore
from bridge.session.snode.rpc import SnodeClient
from bridge.session.swarm_polling import SwarmPolling
from bridge.session.userconfig import views
from bridge.session.userconfig.state import UserConfigState
from bridge.session.userconfig.sync import UserConfigs
from bridge.session.userconfig.views import JoinedGroup

log = logging.getLogger("bridge.core.direct.user_configs")

KV_PREFIX = "user-config:"
GroupsChanged = Callable[[str, list[JoinedGroup]], Awaitable[None]]
#: A login's configs are polled once every this many inbox poll intervals (the first at once).
CONFIG_POLL_TICKS = 6
#: Seconds a login's first message waits for its configs' first read (then it is retried).
READY_WAIT_S = 10.0


class KvUserConfigStore:
    """:class:`~bridge.session.userconfig.sync.UserConfigStore` on the ``kv`` table."""

    def __init__(self, kv: KVRepo) -> None:
        self._kv = kv
        # Every saved state, read in one query at the first load (many logins start at once);
        # each entry is used once, later loads read the table.
        self._preloaded: dict[str, str] | None = None

    async def load_user_config(self, account: str, namespace: int) -> str | None:
        key = f"{KV_PREFIX}{account}:{namespace}"
        if self._preloaded is None:
            self._preloaded = dict(await self._kv.items(KV_PREFIX))
        found = self._preloaded.pop(key, None)
        return found if found is not None else await self._kv.get(key)

    async def save_user_config(self, account: str, namespace: int, value: str) -> None:
        key = f"{KV_PREFIX}{account}:{namespace}"
        if self._preloaded is not None:
            self._preloaded.pop(key, None)
        await self._kv.set(key, value)


def profile_of(view: views.UserProfileView) -> Profile | None:
    """The profile a login sends: UserProfile's, or none at all when it is empty (a profile
    without a picture and with a fresh time would erase the user's avatar everywhere)."""
    if view.empty:
        return None
    url, key = view.picture_url, view.picture_key
    return Profile(view.name, url, key, view.updated or None)


class LoginConfigs:
    """The user configs of every running login; see the module docstring."""

    def __init__(
        self, snode: SnodeClient, kv: KVRepo, poll_state: PollStateStore, poll_interval: float
    ) -> None:
        self._snode = snode
        self._store = KvUserConfigStore(kv)
        self._poll_state = poll_state
        # Configs change rarely (a person on their phone): polled every few inbox ticks, on
        # ticks shared by every login, so they cost few extra subrequests per cycle.
        self._poll_interval = poll_interval * CONFIG_POLL_TICKS
        self._running: dict[str, UserConfigs] = {}
        self._group_listeners: list[GroupsChanged] = []

    def get(self, session_id: str) -> UserConfigs | None:
        """The configs of a running login."""
        return self._running.get(session_id)

    async def start(
        self, identity: Identity, client: SessionClient, polling: SwarmPolling
    ) -> UserConfigs:
        """Start reading ``identity``'s configs; ``client``'s profile follows UserProfile."""
        session_id = identity.session_id.value
        if session_id in self._running:
            return self._running[session_id]

        async def changed(namespace: int, state: UserConfigState) -> None:
            if namespace == views.USER_PROFILE:
                client.profile = profile_of(views.user_profile(state.data))
            elif namespace == views.USER_GROUPS:
                await self._groups_changed(session_id, views.groups_joined(state.data))

        configs = UserConfigs(
            identity,
            self._snode,
            self._store,
            self._poll_state,
            polling=polling,
            poll_interval=self._poll_interval,
            on_change=changed,
        )
        await configs.load()
        client.profile = profile_of(configs.profile())
        self._running[session_id] = configs
        await configs.start()
        return configs

    async def stop(self, session_id: str) -> None:
        configs = self._running.pop(session_id, None)
        if configs is not None:
            await configs.stop()

    async def stop_all(self) -> None:
        for session_id in list(self._running):
            await self.stop(session_id)

    async def ready(self, session_id: str, timeout: float = READY_WAIT_S) -> bool:
        """Whether the login's configs were read from its swarm at least once, waiting up to
        ``timeout`` seconds for the first read (always true for an account without configs,
        e.g. the bot's)."""
        configs = self._running.get(session_id)
        if configs is None or configs.synced.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(configs.synced.wait(), timeout)
        return configs.synced.is_set()

    # --- contacts -----------------------------------------------------------------------------

    def is_blocked(self, session_id: str, peer: str) -> bool:
        """Whether the login's owner blocked ``peer`` (Contacts ``b``)."""
        configs = self._running.get(session_id)
        return configs is not None and configs.is_blocked(peer)

    def is_approved(self, session_id: str, peer: str) -> bool:
        configs = self._running.get(session_id)
        found = configs.contacts().get(peer) if configs is not None else None
        return found is not None and found.approved

    async def accept(self, client: SessionClient, peer: str) -> bool:
        """The Matrix user answered ``peer`` (a reply, or ``accept``): send the acceptance
        (MessageRequestResponse) unless the contact is approved already, and mark it approved
        in Contacts. Returns whether anything was done. Raises SessionError if the acceptance
        could not be sent."""
        session_id = client.session_id.value
        configs = self._running.get(session_id)
        if configs is None or self.is_approved(session_id, peer):
            return False
        await client.accept_message_request(peer)
        now = int(time.time())
        try:
            await configs.edit(
                views.CONTACTS, lambda d: views.set_contact(d, peer, approved=True, created=now)
            )
        except SessionError as e:  # the next poll pushes it
            log.info("Contacts of %s not pushed yet: %s", session_id[:10], e)
        log.info("%s accepted the message request of %s", session_id[:10], peer[:10])
        return True

    # --- read state ---------------------------------------------------------------------------

    async def mark_read(self, session_id: str, peer: str, at_ms: int) -> None:
        """The owner read the chat with ``peer`` (a ``05…`` user, or a ``03…`` group) up to
        ``at_ms`` on Matrix."""
        configs = self._running.get(session_id)
        if configs is None:
            return
        table = b"g" if peer.startswith("03") else b"1"
        await configs.edit(
            views.CONVO_INFO_VOLATILE, lambda d: views.set_read(d, table, peer, at_ms)
        )

    # --- groups (for the group portals) -------------------------------------------------------

    def on_groups_changed(self, listener: GroupsChanged) -> None:
        """Call ``listener(session_id, groups)`` whenever a login's UserGroups changes (read
        from the phone or written here); a failing listener is logged, not raised."""
        self._group_listeners.append(listener)

    async def _groups_changed(self, session_id: str, groups: list[JoinedGroup]) -> None:
        for listener in self._group_listeners:
            try:
                await listener(session_id, groups)
            except Exception:
                log.exception("A UserGroups listener failed for %s", session_id[:10])

    def groups_joined(self, session_id: str) -> list[JoinedGroup]:
        """The login's UserGroups entries (groups v2): joined, invited, kicked or destroyed
        (``JoinedGroup.invited`` / ``.removed``); empty for an unknown login."""
        configs = self._running.get(session_id)
        return configs.groups_joined() if configs is not None else []

    async def group_joined(
        self,
        session_id: str,
        group_id: str,
        *,
        name: str | None,
        secret_key: bytes | None = None,
        auth_data: bytes | None = None,
        joined: int | None = None,
    ) -> bool:
        """Record that the login joined ``group_id`` (``03…``) with its admin seed or member
        auth data, so the phone shows the group too. Returns whether the config changed."""
        configs = self._running.get(session_id)
        if configs is None:
            return False
        before = next((g for g in configs.groups_joined() if g.group_id == group_id), None)
        when = joined if joined is not None else before.joined if before else int(time.time())
        return await configs.edit(
            views.USER_GROUPS,
            lambda d: views.set_group(
                d, group_id, name=name, joined=when, secret_key=secret_key, auth_data=auth_data
            ),
        )
