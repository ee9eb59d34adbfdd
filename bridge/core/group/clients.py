"""The running group clients: one :class:`GroupsClient` per Session identity the bridge runs
(the bot's and each login's), each over its own database-backed group store.

A group client rides on its identity's 1:1 :class:`~bridge.session.client.SessionClient`
(which the direct-chat side runs): group invites and promotions arrive there as 1:1
messages, and attachments are uploaded through its file transfer. This kind never imports
the direct side; :mod:`bridge.app` passes ``session_client``, which finds the running 1:1
client of a Session id (docs/architecture.md §3.3).

Every client's events go to one handler together with the Session id they arrived on. A
transient failure of the handler (the database away) makes the client wait and deliver the
event again, without limit, as for direct chats (docs/architecture.md §4.7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bridge.core.portal.failures import is_transient
from bridge.session.client import SessionClient
from bridge.session.groups.events import GroupEvent
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.store import GroupStore
from bridge.session.keys import Identity
from bridge.session.snode.rpc import SnodeClient
from bridge.session.subscribers import RetryLater

log = logging.getLogger("bridge.core.group.clients")

__all__ = ["GroupClients", "GroupEventHandler", "SessionClientOf", "SkipGroup"]

#: (the Session id the event arrived on, the event)
GroupEventHandler = Callable[[str, GroupEvent], Awaitable[None]]
#: The running 1:1 client of a Session id (the direct-chat side's), if any.
SessionClientOf = Callable[[str], SessionClient | None]
#: The group store of one Session id.
StoreOf = Callable[[str], GroupStore]
#: Whether a group is no longer polled (its portal was unbridged).
SkipGroup = Callable[[str], Awaitable[bool]]


async def _never(group_id: str) -> bool:
    return False


class GroupClients:
    """Starts, finds and stops the group clients of the bot and of every login."""

    def __init__(
        self,
        *,
        snode: SnodeClient,
        store_of: StoreOf,
        session_client: SessionClientOf,
        bot_session_id: str,
        poll_interval: float,
        skip_group: SkipGroup = _never,
    ) -> None:
        self._snode = snode
        self._skip_group = skip_group
        self._store_of = store_of
        self._session_client = session_client
        self._bot_session_id = bot_session_id
        self._poll_interval = poll_interval
        self._clients: dict[str, GroupsClient] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._handler: GroupEventHandler | None = None

    def bind_handler(self, handler: GroupEventHandler) -> None:
        """Where every client's events go (the inbound path, built after this object)."""
        self._handler = handler

    def client(self, session_id: str) -> GroupsClient | None:
        """The running group client of ``session_id`` (the bot's or a login's), if any."""
        return self._clients.get(session_id)

    def bot_session_id(self) -> str:
        """The bot's Session id."""
        return self._bot_session_id

    def running(self) -> list[str]:
        """The Session ids whose group clients run."""
        return list(self._clients)

    async def start_identity(
        self, identity: Identity, dm: SessionClient | None = None
    ) -> GroupsClient:
        """Start the group client of ``identity`` (idempotent) over its 1:1 client ``dm``
        (by default the running one): given before that client starts polling, no invite or
        promotion it delivers can be missed."""
        session_id = identity.session_id.value
        found = self._clients.get(session_id)
        if found is not None:
            return found
        handler = self._handler
        if handler is None:
            raise RuntimeError("GroupClients started before bind_handler")
        store = self._store_of(session_id)
        skipped = [
            m.group_id for m in await store.memberships() if await self._skip_group(m.group_id)
        ]
        client = GroupsClient(
            identity,
            self._snode,
            store,
            dm=dm if dm is not None else self._session_client(session_id),
            poll_interval=self._poll_interval,
        )

        async def deliver(event: GroupEvent) -> None:
            try:
                await handler(session_id, event)
            except Exception as e:
                if is_transient(e):  # not counted as a failed try: waited for
                    raise RetryLater(f"{type(e).__name__}: {e}") from e
                raise

        self._unsubscribe[session_id] = client.subscribe(deliver)
        self._clients[session_id] = client
        await client.start()
        # Before its first cycle (start awaits nothing after spawning the poll task): the
        # groups of unbridged portals are not polled (README, Group portals).
        for group_id in skipped:
            client.poller.remove(group_id)
        log.info("Started the group client of %s", session_id)
        return client

    def stop_polling(self, group_id: str) -> None:
        """No identity polls ``group_id`` any more (its portal was unbridged); memberships,
        cursors and stored bytes stay, and :meth:`start_identity` leaves it out too as long
        as ``skip_group`` says so."""
        for client in self._clients.values():
            client.poller.remove(group_id)

    async def stop_identity(self, session_id: str, *, quiet: bool = False) -> None:
        """Stop the group client of ``session_id`` (a logout); its store keeps everything.
        ``quiet``: the bridge is stopping (nothing is logged, docs/operations.md)."""
        client = self._clients.pop(session_id, None)
        unsubscribe = self._unsubscribe.pop(session_id, None)
        if unsubscribe is not None:
            unsubscribe()
        if client is not None:
            await client.stop()
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "Stopped the group client of %s",
                session_id,
            )

    async def resume(self, session_id: str) -> None:
        """Restart the group client of ``session_id`` so that it polls every accepted group
        of its store (one added from outside, e.g. a group joined on the phone)."""
        client = self._clients.get(session_id)
        if client is None:
            return
        await self.stop_identity(session_id, quiet=True)
        await self.start_identity(client.identity)

    async def stop(self) -> None:
        """Stop every client, side by side (each stop is bounded by the client)."""
        ids = list(self._clients)
        results = await asyncio.gather(
            *(self.stop_identity(i, quiet=True) for i in ids), return_exceptions=True
        )
        for session_id, error in zip(ids, results, strict=True):
            if isinstance(error, Exception):
                log.error("Stopping the group client of %s failed", session_id, exc_info=error)
