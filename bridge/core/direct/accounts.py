"""The running Session accounts: one :class:`SessionClient` per login, plus the bot's.

Each client polls its own swarm (namespace 0) and hands every event to one handler together
with the :class:`Account` it arrived on. The clients share one
:class:`~bridge.session.swarm_polling.SwarmPolling`: accounts on the same swarm are polled in
shared ``batch`` requests, so a cycle costs requests per swarm, not per account. Poll cursors
and the "seen" hashes live in the database (:class:`DbPollState`, cursors cached in memory),
and a client acknowledges a message only after the handler returned, so a crash re-delivers
and the handlers' dedup keys make that harmless.

Clients start with the bridge (the bot and every stored login), on ``login``, and stop on
``logout`` and at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bridge.config import SessionConfig
from bridge.core.direct.poll_state import DbPollState
from bridge.core.direct.timers import ConversationTimers
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.logins import Login
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.dm_timers import DirectTimerRepo
from bridge.db.repos.kv import KVRepo
from bridge.session.client import ExpiryLookup, SessionClient
from bridge.session.dm_events import ClientEvent
from bridge.session.dm_media import FileTransfer
from bridge.session.keys import Identity
from bridge.session.messages import Profile
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import SnodeClient
from bridge.session.snode.transport import SnodeTransport
from bridge.session.swarm_polling import SwarmPolling

log = logging.getLogger("bridge.core.direct.accounts")


@dataclass(frozen=True)
class Account:
    """A Session identity the bridge runs: the bot's, or a Matrix user's login."""

    session_id: str
    login_id: int | None
    owner_mxid: str | None

    @property
    def is_bot(self) -> bool:
        return self.login_id is None


AccountHandler = Callable[[Account, SessionClient, ClientEvent], Awaitable[None]]
#: Awaited with an identity and its 1:1 client after the client is made and before it starts
#: polling (the group side subscribes there, so it misses no invite delivered at startup).
BeforeStart = Callable[[Identity, SessionClient], Awaitable[None]]


def build_snode_client(http: aiohttp.ClientSession, config: SessionConfig) -> SnodeClient:
    """A storage-node client bootstrapping from the configured seeds and their pins."""
    transport = SnodeTransport(http)
    seeds = [SeedNode(url, config.seed_cert_sha256.get(url)) for url in config.seed_nodes]
    return SnodeClient(NodePool(transport, seeds), transport)


class SessionAccounts:
    """Starts, finds and stops the Session clients of the bot and of every login."""

    def __init__(
        self,
        *,
        snode: SnodeClient,
        files: FileTransfer,
        cursors: CursorRepo,
        poll_interval: float,
        kv: KVRepo | None = None,
    ) -> None:
        self._snode = snode
        self._polling = SwarmPolling(snode)
        self._files = files
        self._state = DbPollState(cursors)
        self._handler: AccountHandler | None = None
        self._poll_interval = poll_interval
        self._clients: dict[str, tuple[Account, SessionClient]] = {}
        self._before_start: list[BeforeStart] = []
        #: The logins' user configs (docs/user-configs.md); None without a ``kv`` store.
        self.configs = (
            LoginConfigs(snode, kv, self._state, poll_interval) if kv is not None else None
        )
        #: Each direct conversation's disappearing setting (:mod:`.timers`); None without kv.
        self.timers = ConversationTimers(DirectTimerRepo(kv)) if kv is not None else None

    def before_start(self, hook: BeforeStart) -> None:
        """Await ``hook`` for every client started from now on, before it starts polling."""
        self._before_start.append(hook)

    def bind_handler(self, handler: AccountHandler) -> None:
        """Where every client's events go. Bound after construction because the handler (the
        inbound path) needs this object to find the owners of accounts."""
        self._handler = handler

    @property
    def snode(self) -> SnodeClient:
        """The storage-network client every account's client uses."""
        return self._snode

    @property
    def polling(self) -> SwarmPolling:
        """The shared polling every account's client polls through."""
        return self._polling

    def get(self, session_id: str) -> tuple[Account, SessionClient] | None:
        """The running account and client of ``session_id``, if any."""
        return self._clients.get(session_id)

    def owner_of(self, session_id: str) -> str | None:
        """The Matrix user whose login ``session_id`` is (None for the bot or unknown ids)."""
        found = self._clients.get(session_id)
        return found[0].owner_mxid if found else None

    def is_ours(self, session_id: str) -> bool:
        """Whether ``session_id`` is an identity this bridge runs (echo suppression)."""
        return session_id in self._clients

    async def start_bot(self, identity: Identity, profile: Profile) -> SessionClient:
        """Start the bot's client, which introduces itself with ``profile``."""
        account = Account(identity.session_id.value, None, None)
        return await self._start(account, identity, profile)

    async def start_login(self, login: Login, display_name: str | None = None) -> None:
        """Start a login's client (the ``on_login`` hook and startup). With user configs its
        profile is the account's UserProfile (``display_name`` is not used: the user's real
        name and avatar are never replaced by Matrix's); without, it shows ``display_name``."""
        account = Account(login.session_id, login.record.id, login.record.mxid)
        if self.configs is not None:
            display_name = None
        profile = Profile(display_name=display_name) if display_name else None
        if self.timers is not None:
            await self.timers.load()
        client = await self._start(account, login.identity, profile)
        if self.configs is not None:
            await self.configs.start(login.identity, client, self._polling)

    async def stop_login(self, login: Login) -> None:
        """Stop a login's client (the ``on_logout`` hook)."""
        found = self._clients.pop(login.session_id, None)
        if self.configs is not None:
            await self.configs.stop(login.session_id)
        if found is not None:
            await found[1].stop()
            self._state.forget(login.session_id)
            log.info("Stopped the Session client of %s", login.session_id)

    async def stop(self) -> None:
        """Stop every client."""
        clients, self._clients = list(self._clients.values()), {}
        if self.configs is not None:
            await self.configs.stop_all()
        # Side by side: each may wait (bounded) for the event it is delivering to finish.
        stopped = await asyncio.gather(*(c.stop() for _, c in clients), return_exceptions=True)
        for (account, _), error in zip(clients, stopped, strict=True):
            if isinstance(error, Exception):
                log.error(
                    "Stopping the Session client of %s failed", account.session_id, exc_info=error
                )
        await self._polling.close()
        self._polling = SwarmPolling(self._snode)  # for clients started after a restart

    async def _start(
        self, account: Account, identity: Identity, profile: Profile | None
    ) -> SessionClient:
        if account.session_id in self._clients:
            return self._clients[account.session_id][1]
        handler = self._handler
        if handler is None:
            raise RuntimeError("SessionAccounts started before bind_handler")
        client = SessionClient(
            identity,
            self._snode,
            self._state,
            self._files,
            profile=profile,
            poll_interval=self._poll_interval,
            polling=self._polling,
            # A login lives beside the user's phone: copies of what it sends (§3.3) and the
            # conversations' disappearing settings (§2.14). The bot needs neither.
            sync_copies=not account.is_bot,
            expiry_for=self._expiry_for(account),
        )

        async def deliver(event: ClientEvent) -> None:
            await handler(account, client, event)

        client.subscribe(deliver)
        self._clients[account.session_id] = (account, client)
        for hook in self._before_start:
            await hook(identity, client)
        await client.start()
        log.info("Started the Session client of %s", account.session_id)
        return client

    def _expiry_for(self, account: Account) -> ExpiryLookup | None:
        if account.is_bot or self.timers is None:
            return None
        return self.timers.lookup_for(account.session_id)
