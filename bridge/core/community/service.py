"""Community servers the bridge reads: one link (the bot's client and its poll loop) per server.

The bot's Session identity reads every bridged room of a server with one ``/batch`` per poll
(docs/session-protocol.md §5.9). Each room's items are handed, in order and under the portal's
lock,
to the inbound handler; the room's seqno cursor is committed only after all of them were
handled and recorded, so a crash re-delivers and the dedup by message id makes that harmless.
The poll loop and the failure policy per item are :mod:`bridge.core.community.polling`; each
server's loop runs under a :class:`~bridge.supervisor.Supervisor`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from bridge.core.community.backfill import BackfillPolicy
from bridge.core.community.polling import (
    BoxesHandler,
    Item,
    ItemHandler,
    RoomInfoHandler,
    ServerLink,
    ServerPolling,
    describe,
)
from bridge.core.community.refusals import lookup_refusal
from bridge.core.portal.deadletters import DeadLetters, RetryFailed, payload_of
from bridge.db.records import DeadLetterPath, DeadLetterRecord, PortalKind, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import RoomInfo
from bridge.session.sogs.urls import CommunityServerRef, parse_community_url
from bridge.supervisor import Supervisor

log = logging.getLogger("bridge.core.community.service")

__all__ = [
    "Communities",
    "CommunityJoinError",
    "CommunityLinks",
    "CursorRepoStore",
    "ServerLink",
    "community_key",
    "parse_community_key",
]


async def _ignore_info(
    portal: PortalRecord, client: CommunityClient, token: str, info: RoomInfo
) -> None:
    return None


def _allow_nothing(url: str) -> None:
    return None


class CommunityJoinError(Exception):
    """A community room cannot be bridged; the message is meant for the user."""


def community_key(server: CommunityServerRef, token: str) -> str:
    """The canonical ``portal.session_key`` of a community room."""
    return f"{server.base_url}|{token}|{server.pubkey.hex()}"


def parse_community_key(key: str) -> tuple[CommunityServerRef, str]:
    base_url, token, pubkey = key.split("|")
    return CommunityServerRef(base_url, bytes.fromhex(pubkey)), token


class CursorRepoStore:
    """One server's cursor store, persisted in ``poll_cursor`` under its URL **and** key.

    A server is its base URL and its public key (docs/session-protocol.md §5.1): the client's
    ``server`` argument (its base URL) is not enough, so each store is bound to one
    :class:`CommunityServerRef` and ignores it.
    """

    def __init__(self, cursors: CursorRepo, server: CommunityServerRef) -> None:
        self._cursors = cursors
        self._poller = f"sogs:{server.base_url}|{server.pubkey.hex()}"
        # Bridges before this name had one client per base URL, under ``sogs:<base URL>``.
        self._legacy_poller = f"sogs:{server.base_url}"
        # Write-through: this store is the only writer of its server's cursors, so each is
        # read from the database once, not on every poll (docs/architecture.md §4.5).
        self._known: dict[str, int] = {}
        # The first read loads every cursor of the server at once (two queries, however
        # many rooms); afterwards a stream with no row was never committed, unless a write
        # of it failed midway (then it is read again).
        self._loaded = False
        self._unsure: set[str] = set()

    async def get(self, server: str, stream: str) -> int:
        if not self._loaded:
            await self._load()
        known = self._known.get(stream)
        if known is not None:
            return known
        if stream not in self._unsure:
            return 0
        record = await self._cursors.get_cursor(self._poller, "", stream)
        if record is None:
            record = await self._cursors.get_cursor(self._legacy_poller, "", stream)
        value = record.seqno if record and record.seqno is not None else 0
        self._known[stream] = value
        self._unsure.discard(stream)
        return value

    async def _load(self) -> None:
        legacy = await self._cursors.list_cursors(self._legacy_poller)
        current = await self._cursors.list_cursors(self._poller)
        for record in legacy:
            if record.seqno is not None:
                self._known[record.namespace_or_room] = record.seqno
        for record in current:  # the current name wins over the old one
            self._known[record.namespace_or_room] = record.seqno or 0
        self._loaded = True

    async def set(self, server: str, stream: str, value: int) -> None:
        self._known.pop(stream, None)  # unknown until the write is committed
        self._unsure.add(stream)
        await self._cursors.set_cursor(self._poller, "", stream, seqno=value)
        self._known[stream] = value
        self._unsure.discard(stream)


class CommunityLinks:
    """The bot's client for each community server, created on first use.

    Keyed by base URL **and** public key: a URL given with another key is another server to
    the bridge (its signatures are refused, §5.2), never a way into this one's poller.
    """

    def __init__(
        self, *, http: aiohttp.ClientSession, bot_identity: Identity, cursors: CursorRepo
    ) -> None:
        self._http = http
        self._bot_identity = bot_identity
        self._cursors = cursors
        self._links: dict[CommunityServerRef, ServerLink] = {}

    def link(self, server: CommunityServerRef) -> ServerLink:
        link = self._links.get(server)
        if link is None:
            link = self._links[server] = ServerLink(self._new_client(server))
        return link

    def lookup_client(self, server: CommunityServerRef) -> CommunityClient:
        """The followed server's client, else a throw-away one (a lookup with a wrong key or
        of a server that is never followed leaves nothing behind)."""
        link = self._links.get(server)
        return link.client if link is not None else self._new_client(server)

    def _new_client(self, server: CommunityServerRef) -> CommunityClient:
        store = CursorRepoStore(self._cursors, server)
        return CommunityClient(self._http, self._bot_identity, server, cursors=store)

    def client_for(self, portal: PortalRecord) -> tuple[CommunityClient, str]:
        """The bot's client and the room token of a community portal."""
        server, token = parse_community_key(portal.session_key)
        return self.link(server).client, token

    def all(self) -> list[ServerLink]:
        return list(self._links.values())


class Communities:
    """Joins community rooms for portals and polls them."""

    def __init__(
        self,
        *,
        links: CommunityLinks,
        portals: PortalRepo,
        handle_item: ItemHandler,
        portal_lock: Callable[[int], asyncio.Lock],
        poll_interval: float,
        on_room_info: RoomInfoHandler = _ignore_info,
        allow_downloads: Callable[[str], None] = _allow_nothing,
        dead_letters: DeadLetters | None = None,
        supervisor: Supervisor | None = None,
        on_boxes: BoxesHandler | None = None,
        backfill: BackfillPolicy | None = None,
    ) -> None:
        self._links = links
        self._portals = portals
        self._handle_item = handle_item
        self._portal_lock = portal_lock
        self._dead_letters = dead_letters
        self._supervisor = supervisor if supervisor is not None else Supervisor()
        self._polling = ServerPolling(
            portals=portals,
            handle_item=handle_item,
            portal_lock=portal_lock,
            poll_interval=poll_interval,
            on_room_info=on_room_info,
            # Attachments of a followed server's posts may be fetched (AllowedDownloads.allow).
            allow_downloads=allow_downloads,
            park=self._park,
        )
        if on_boxes is not None:  # the inboxes and outboxes (bridge.core.community.boxes)
            self._polling.on_boxes = on_boxes
        if backfill is not None:
            self._polling.backfill = backfill
        if dead_letters is not None:
            dead_letters.register(DeadLetterPath.COMMUNITY, self.retry_parked)

    def link(self, server: CommunityServerRef) -> ServerLink:
        return self._links.link(server)

    def client_for(self, portal: PortalRecord) -> tuple[CommunityClient, str]:
        """The bot's client and the room token of a community portal."""
        return self._links.client_for(portal)

    async def start(self) -> None:
        """Resume every active community portal: each server's loop joins its rooms and then
        polls them; a server that cannot be reached now is tried again in the background."""
        for portal in await self._portals.list_active(PortalKind.COMMUNITY):
            server, token = parse_community_key(portal.session_key)
            if token.startswith("dm:"):  # a blinded DM (bridge.core.community.dm_keys)
                continue
            link = self.link(server)
            if token not in link.portals:
                link.pending[token] = portal.id
            self._ensure_polling(link)

    async def stop(self) -> None:
        for link in self._links.all():
            if link.loop is not None:
                await self._supervisor.cancel(link.loop)
                link.loop = None

    def _ensure_polling(self, link: ServerLink) -> None:
        if not link.running:
            name = f"sogs {link.client.server.base_url}"
            link.loop = self._supervisor.spawn(name, lambda: self._polling.run(link))

    @staticmethod
    def parse(url: str) -> tuple[CommunityServerRef, str]:
        """The server and room token of a community URL: :class:`CommunityJoinError` if it
        is not one."""
        try:
            parsed = parse_community_url(url)
        except SessionError as e:
            raise CommunityJoinError(
                f"That is not a community URL ({e}). It looks like "
                "`https://host/room?public_key=<64 hex digits>`."
            ) from None
        return parsed.server, parsed.room

    async def lookup(self, url: str) -> tuple[CommunityServerRef, str, RoomInfo]:
        """Check a community URL against its server: :class:`CommunityJoinError` if wrong."""
        server, room = self.parse(url)
        client = self._links.lookup_client(server)
        try:
            info = await client.room(room)
        except SessionError as e:
            raise CommunityJoinError(lookup_refusal(server, room, e)) from None
        return server, room, info

    async def follow(self, portal: PortalRecord) -> None:
        """Start reading the community room of ``portal``."""
        server, token = parse_community_key(portal.session_key)
        await self._follow(server, token, portal.id)

    async def _follow(self, server: CommunityServerRef, token: str, portal_id: int) -> None:
        link = self.link(server)
        await self._polling.join(link, token, portal_id)
        self._ensure_polling(link)

    def unfollow(self, portal: PortalRecord) -> None:
        server, token = parse_community_key(portal.session_key)
        link = self.link(server)
        link.portals.pop(token, None)
        link.pending.pop(token, None)
        link.client.leave(token)

    async def _park(
        self, portal: PortalRecord, item: Item, error: BaseException, tries: int
    ) -> None:
        if self._dead_letters is None:
            log.error("Dropping %s: %s", describe(item), error)
            return
        payload = {"portal_id": portal.id, "room": item.room, "id": item.id, "seqno": item.seqno}
        await self._dead_letters.park(
            DeadLetterPath.COMMUNITY,
            describe(item),
            payload,
            error,
            attempts=tries,
            portal_id=portal.id,
        )

    async def retry_parked(self, record: DeadLetterRecord) -> None:
        """Handle a parked item again, as the server has it now (its current text and
        reactions); raises if that fails (it then stays parked)."""
        payload = payload_of(record)
        portal = await self._portals.get_by_id(int(payload["portal_id"]))
        if portal is None or portal.unbridged_at is not None:
            raise RetryFailed("its portal is no longer bridged")
        client, token = self.client_for(portal)
        try:
            item = await client.message(token, int(payload["id"]))
        except SessionError as e:
            raise RetryFailed(f"the community server cannot give it now: {e}") from e
        async with self._portal_lock(portal.id):
            await self._handle_item(portal, item)
