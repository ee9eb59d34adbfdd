"""The running Session accounts: one :class:`SessionClient` per login, plus the bot's.

Each client polls its own swarm (namespace 0) and hands every event to one handler together
with the :class:`Account` it arrived on. Poll cursors and the "seen" hashes live in the
database (:class:`DbPollState`), and a client acknowledges a message only after the handler
returned, so a crash re-delivers and the handlers' dedup keys make that harmless.

Clients start with the bridge (the bot and every stored login), on ``login``, and stop on
``logout`` and at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from bridge.config import SessionConfig
from bridge.core.logins import Login
from bridge.db.repos.cursors import CursorRepo
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent
from bridge.session.dm_media import FileTransfer
from bridge.session.keys import Identity
from bridge.session.messages import Profile
from bridge.session.snode.nodes import NodePool, SeedNode
from bridge.session.snode.rpc import SnodeClient
from bridge.session.snode.transport import SnodeTransport

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


class DbPollState:
    """The :class:`bridge.session.poller.PollStateStore` of the bridge, in ``poll_cursor``
    (``last_hash`` per node and namespace) and ``inbound_dedup`` (seen hashes)."""

    def __init__(self, cursors: CursorRepo) -> None:
        self._cursors = cursors

    @staticmethod
    def _seen_key(account: str, hash_: str) -> str:
        return f"seen:{account}:{hash_}"

    async def get_last_hash(self, node: str, account: str, namespace: int) -> str | None:
        """The cursor of (node, account, namespace)."""
        record = await self._cursors.get_cursor(f"snode:{account}", node, str(namespace))
        return record.last_hash if record is not None else None

    async def set_last_hash(self, node: str, account: str, namespace: int, value: str) -> None:
        """Move the cursor of (node, account, namespace)."""
        await self._cursors.set_cursor(f"snode:{account}", node, str(namespace), last_hash=value)

    async def seen(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` were already committed for ``account``."""
        keys = {self._seen_key(account, h): h for h in hashes}
        found = await self._cursors.processed_among(list(keys))
        return {keys[k] for k in found}

    async def mark_seen(self, account: str, hash_: str, expiry: int) -> None:
        """Record a committed hash (pruned with the other dedup markers)."""
        await self._cursors.claim_inbound(self._seen_key(account, hash_))


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
    ) -> None:
        self._snode = snode
        self._files = files
        self._state = DbPollState(cursors)
        self._handler: AccountHandler | None = None
        self._poll_interval = poll_interval
        self._clients: dict[str, tuple[Account, SessionClient]] = {}

    def bind_handler(self, handler: AccountHandler) -> None:
        """Where every client's events go. Bound after construction because the handler (the
        inbound path) needs this object to find the owners of accounts."""
        self._handler = handler

    @property
    def snode(self) -> SnodeClient:
        """The storage-network client every account's client uses."""
        return self._snode

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
        """Start a login's client (the ``on_login`` hook and startup), showing
        ``display_name`` to Session users."""
        account = Account(login.session_id, login.record.id, login.record.mxid)
        profile = Profile(display_name=display_name) if display_name else None
        await self._start(account, login.identity, profile)

    async def stop_login(self, login: Login) -> None:
        """Stop a login's client (the ``on_logout`` hook)."""
        found = self._clients.pop(login.session_id, None)
        if found is not None:
            await found[1].stop()
            log.info("Stopped the Session client of %s", login.session_id)

    async def stop(self) -> None:
        """Stop every client."""
        clients, self._clients = list(self._clients.values()), {}
        for _, client in clients:
            await client.stop()

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
        )

        async def deliver(event: ClientEvent) -> None:
            await handler(account, client, event)

        client.subscribe(deliver)
        self._clients[account.session_id] = (account, client)
        await client.start()
        log.info("Started the Session client of %s", account.session_id)
        return client
