"""The user configs of one account on the network: poll, merge, push (docs/user-configs.md §3).

:class:`UserConfigs` polls namespaces 2-5 of the account's own swarm (in the shared swarm
batches when given a :class:`~bridge.session.swarm_polling.SwarmPolling`: one ``get_expiries``
plus four ``retrieve`` subrequests), merges what arrives with what it holds, pushes a merged or
edited message (seqno + 1, encrypted with the account's seed, wrapped, stored signed with a
30-day TTL), deletes the storage hashes it superseded and extends the current ones' expiry
once a day. State lives behind
:class:`UserConfigStore` (the bridge keeps it in its key-value table); a poll's messages are
acknowledged only after the new state was saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from bridge.session.errors import SessionError
from bridge.session.groups import multipart
from bridge.session.groups.bencode import BValue
from bridge.session.keys import Identity
from bridge.session.onetoone import MessageKeys
from bridge.session.poller import PolledMessage, Poller, PollStateStore
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.rpc import SnodeClient
from bridge.session.swarm_polling import SwarmPolling
from bridge.session.userconfig import state as st
from bridge.session.userconfig import views
from bridge.session.userconfig.state import UserConfigState
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.session.userconfig")

#: Storage TTL of config messages, as the apps store them (docs/session-protocol.md §6.12).
CONFIG_TTL_MS = 30 * 86_400_000

#: How often the current configs' expiry is pushed back to a full TTL (seconds).
EXTEND_EVERY_S = 86_400.0

Changed = Callable[[int, UserConfigState], Awaitable[None]]
Edit = Callable[[Mapping[bytes, BValue]], Mapping[bytes, BValue]]


class UserConfigStore(Protocol):
    """Where each (account, namespace) config state is kept, as text."""

    async def load_user_config(self, account: str, namespace: int) -> str | None:
        """The saved state, if any."""
        ...

    async def save_user_config(self, account: str, namespace: int, value: str) -> None:
        """Replace the saved state."""
        ...


class MemoryUserConfigStore:
    """An in-memory :class:`UserConfigStore`."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int], str] = {}

    async def load_user_config(self, account: str, namespace: int) -> str | None:
        """See :class:`UserConfigStore`."""
        return self.values.get((account, namespace))

    async def save_user_config(self, account: str, namespace: int, value: str) -> None:
        """See :class:`UserConfigStore`."""
        self.values[(account, namespace)] = value


def _raw(data: bytes) -> bytes:
    return data


class UserConfigs:
    """One account's four user configs; see the module docstring."""

    def __init__(
        self,
        identity: Identity,
        snode: SnodeClient,
        store: UserConfigStore,
        poll_state: PollStateStore,
        *,
        polling: SwarmPolling | None = None,
        poll_interval: float = 5.0,
        on_change: Changed | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._keys = MessageKeys.from_seed(identity.ed25519_secret[:32])
        self._signer = Ed25519Signer.from_seed(identity.ed25519_secret[:32])
        self.account = identity.session_id.value
        self._snode = snode
        self._store = store
        self._poll_state = poll_state
        self._polling = polling
        self.poll_interval = poll_interval
        self._on_change = on_change
        self._clock = clock or (lambda: int(time.time() * 1000))  # wall clock, ms
        self._states = {ns: UserConfigState(ns) for ns in views.NAMESPACES}
        self._assembler = multipart.Assembler()
        self._lock = asyncio.Lock()
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        self._extended: float | None = None  # monotonic time of the last expiry extension
        #: Set after the first poll that reached the swarm (the account's configs are known).
        self.synced = asyncio.Event()

    def __repr__(self) -> str:
        return f"UserConfigs({self.account[:10]}…)"

    # --- views ------------------------------------------------------------------------------

    def state(self, namespace: int) -> UserConfigState:
        """The current state of ``namespace`` (2-5)."""
        return self._states[namespace]

    def profile(self) -> views.UserProfileView:
        return views.user_profile(self._states[views.USER_PROFILE].data)

    def contacts(self) -> dict[str, views.Contact]:
        return views.contacts(self._states[views.CONTACTS].data)

    def one_to_one_reads(self) -> dict[str, views.ConvoRead]:
        return views.one_to_one_reads(self._states[views.CONVO_INFO_VOLATILE].data)

    def groups_joined(self) -> list[views.JoinedGroup]:
        return views.groups_joined(self._states[views.USER_GROUPS].data)

    def is_blocked(self, session_id: str) -> bool:
        found = self.contacts().get(session_id)
        return found is not None and found.blocked

    # --- lifecycle --------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the saved states (once)."""
        if self._loaded:
            return
        for ns in views.NAMESPACES:
            text = await self._store.load_user_config(self.account, ns)
            self._states[ns] = UserConfigState.loads(ns, text)
        self._loaded = True

    async def start(self) -> None:
        """Load, then poll until :meth:`stop` (a no-op if running)."""
        await self.load()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"user-configs-{self.account}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        poller = self._new_poller()
        failures = 0
        while True:
            try:
                await self.poll_once(poller)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # network or store down: the next cycle tries again
                failures += 1
                if failures & (failures - 1) == 0:
                    log.warning("%r: config poll failed (%d in a row): %s", self, failures, e)
                poller = self._new_poller()
            if poller.more:
                continue
            wait = self.poll_interval * min(2**failures, 12)
            if self._polling is not None and failures == 0:
                wait = self._polling.until_tick(self.poll_interval)
            await asyncio.sleep(wait)

    def _new_poller(self) -> Poller[bytes]:
        return Poller(
            self._snode, self._signer, self._poll_state, _raw, namespaces=views.NAMESPACES
        )

    # --- reading ----------------------------------------------------------------------------

    async def poll_once(self, poller: Poller[bytes] | None = None) -> None:
        """One poll of namespaces 2-5: merge what arrived, push what must be pushed."""
        await self.load()
        poller = poller or self._new_poller()
        if self._polling is not None:
            events = await self._polling.poll(poller)
        else:
            events = await poller.poll_once()
        messages = [e for e in events if isinstance(e, PolledMessage)]
        by_ns: dict[int, list[tuple[str, bytes]]] = {}
        for m in messages:
            by_ns.setdefault(m.namespace, []).append((m.hash, m.body))
        async with self._lock:
            changed = [ns for ns, blobs in by_ns.items() if await self._absorb(ns, blobs)]
            for ns in views.NAMESPACES:
                if self._states[ns].dirty or self._states[ns].obsolete:
                    try:
                        await self._push(ns)
                    except SessionError as e:  # kept dirty: pushed after a later poll
                        log.info("%r: config ns %d not pushed yet: %s", self, ns, e)
        for m in messages:
            await poller.ack(m)
        await self._keep_alive()
        # Outside the lock: a listener may edit a config in turn.
        on_change = self._on_change
        if on_change is not None:
            for ns in changed:
                await on_change(ns, self._states[ns])
        self.synced.set()

    async def _absorb(self, ns: int, blobs: list[tuple[str, bytes]]) -> bool:
        """Merge ``blobs`` into namespace ``ns``; whether its data changed."""
        now = int(time.time() * 1000)
        result = st.absorb(self._states[ns], blobs, self._keys, self._assembler, now)
        for rejected in result.rejected:
            log.info(
                "%r: ignoring config %s in ns %d: %s",
                self,
                rejected.storage_hash,
                ns,
                rejected.reason,
            )
        if result.state != self._states[ns]:
            await self._save(result.state)
        return result.changed

    # --- writing ----------------------------------------------------------------------------

    async def edit(self, namespace: int, change: Edit) -> bool:
        """Apply ``change`` to ``namespace``'s data and push the new message at once (a failed
        push is retried after each poll). Returns whether anything changed."""
        await self.load()
        async with self._lock:
            before = self._states[namespace]
            after = st.edit(before, self._pruned(namespace, change(before.data)))
            if after is before:
                return False
            await self._save(after)
            with contextlib.suppress(SessionError):
                await self._push(namespace)
        if self._on_change is not None:
            await self._on_change(namespace, self._states[namespace])
        return True

    def _pruned(self, ns: int, data: Mapping[bytes, BValue]) -> Mapping[bytes, BValue]:
        """ConvoInfoVolatile without the conversations libsession prunes before a push
        (docs/user-configs.md §2); the other configs as they are."""
        if ns != views.CONVO_INFO_VOLATILE:
            return data
        return views.prune_convo_info(data, self._clock())

    async def _push(self, ns: int) -> None:
        state = self._states[ns]
        if state.dirty:
            # A merged message is pruned before it is pushed (an edit was pruned already).
            pruned = st.edit(state, self._pruned(ns, state.data))
            if pruned is not state:
                await self._save(pruned)
                state = pruned
            stored = []
            for part in st.seal(state, self._keys):
                result = await self._snode.store(
                    self.account, part, namespace=ns, ttl_ms=CONFIG_TTL_MS, signer=self._signer
                )
                stored.append(result.hash)
            state = st.pushed(state, stored)
            await self._save(state)
            log.info("%r: pushed config ns %d seqno %d", self, ns, state.message.seqno)
        if state.obsolete:
            gone = sorted(state.obsolete)
            try:
                await self._snode.delete(self._signer, gone)
            except SessionError as e:
                log.info("%r: could not delete superseded configs: %s", self, e)
                return
            await self._save(st.deleted(state, gone))

    async def _keep_alive(self) -> None:
        """Extend the current configs' expiry once a day, as the apps do while they poll, so
        an account whose configs nobody changes does not lose them after 30 days."""
        now = time.monotonic()
        if self._extended is not None and now - self._extended < EXTEND_EVERY_S:
            return
        hashes = sorted(h for state in self._states.values() for h in state.hashes)
        if hashes:
            expiry = int(time.time() * 1000) + CONFIG_TTL_MS
            try:
                await self._snode.expire(self._signer, hashes, expiry, mode="extend")
            except SessionError as e:
                log.info("%r: could not extend the configs' expiry: %s", self, e)
                return
        self._extended = now

    async def _save(self, state: UserConfigState) -> None:
        await self._store.save_user_config(self.account, state.namespace, state.dumps())
        self._states[state.namespace] = state
