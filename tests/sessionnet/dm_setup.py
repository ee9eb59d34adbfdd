"""Devnet set-up for direct-message tests and benchmarks: storage nodes, a file server,
:class:`~bridge.session.client.SessionClient` factories and an event collector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent
from bridge.session.files import FileServerClient
from bridge.session.keys import Identity
from bridge.session.messages import Message, VisibleMessage
from bridge.session.poller import MemoryPollState, PollStateStore
from bridge.session.snode.rpc import SnodeClient
from tests.sessionnet.fileserver import FileServer
from tests.sessionnet.helpers import devnet_client, running_devnet, wait_for
from tests.sessionnet.listeners import Listener
from tests.sessionnet.net import Devnet


@dataclass
class Inbox:
    """Collects the events delivered to one client, in delivery order."""

    events: list[ClientEvent] = field(default_factory=list)

    async def __call__(self, event: ClientEvent) -> None:
        self.events.append(event)

    @property
    def messages(self) -> list[DirectMessageEvent]:
        """The direct-message events."""
        return [e for e in self.events if isinstance(e, DirectMessageEvent)]

    def contents(self, kind: type[Any] | None = None) -> list[Message]:
        """The message contents, optionally only of one model class."""
        return [e.content for e in self.messages if kind is None or isinstance(e.content, kind)]

    def bodies(self) -> list[str | None]:
        """The bodies of the visible messages."""
        return [c.body for c in self.contents() if isinstance(c, VisibleMessage)]

    async def wait_count(self, n: int, kind: type[Any] | None = None, timeout: float = 10) -> None:
        """Wait until ``n`` messages (of ``kind``) arrived."""
        await wait_for(lambda: len(self.contents(kind)) >= n, timeout=timeout)


@dataclass
class DmWorld:
    """A running devnet with a file server, and a factory of clients wired to it."""

    net: Devnet
    snode: SnodeClient
    files: FileServerClient
    clients: list[SessionClient] = field(default_factory=list)
    #: The file server's listener (``pause()`` / ``resume()`` for outages).
    files_listener: Listener | None = None

    async def client(
        self,
        identity: Identity | None = None,
        state: PollStateStore | None = None,
        *,
        inbox: Callable[[ClientEvent], Any] | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> SessionClient:
        """A started :class:`SessionClient` (fast polling), subscribed to ``inbox`` if given."""
        kwargs.setdefault("poll_interval", 0.05)
        client = SessionClient(
            identity or Identity.generate(),
            self.snode,
            state if state is not None else MemoryPollState(),
            self.files,
            **kwargs,
        )
        if inbox is not None:
            client.subscribe(inbox)
        if start:
            await client.start()
        self.clients.append(client)
        return client


@asynccontextmanager
async def dm_world(**devnet_kwargs: Any) -> AsyncIterator[DmWorld]:
    """Devnet + file server + a shared snode client; every client is stopped at the end."""
    files_app = FileServer()
    async with running_devnet(**devnet_kwargs) as net, devnet_client(net) as snode:
        listener = await Listener.serve(files_app.make_app(), net.host)
        try:
            async with aiohttp.ClientSession() as http:
                files = FileServerClient(
                    http, listener.base_url, server_pubkey=files_app.ed25519_pubkey
                )
                world = DmWorld(net, snode, files, files_listener=listener)
                try:
                    yield world
                finally:
                    for client in world.clients:
                        await client.stop(timeout=2)
        finally:
            await listener.close()
