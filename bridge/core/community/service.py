"""Community servers the bridge reads: one link (the bot's client and its poll loop) per server.

The bot's Session identity reads every bridged room of a server with one ``/batch`` per poll
(docs/session-protocol.md §5.9). Each room's items are handed, in order and under the portal's
lock,
to the inbound handler; the room's seqno cursor is committed only after all of them were
handled and recorded, so a crash re-delivers and the dedup by message id makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bridge.backoff import Backoff
from bridge.core.community.refusals import lookup_refusal
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.errors import SessionError
from bridge.session.keys import Identity
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import CommunityMessage, ReactionUpdate, RoomInfo
from bridge.session.sogs.urls import CommunityServerRef, parse_community_url

log = logging.getLogger("bridge.core.community.service")

ItemHandler = Callable[[PortalRecord, CommunityMessage | ReactionUpdate], Awaitable[None]]
# (portal, the bot's client, room token, room info): the room's name/description/image changed
RoomInfoHandler = Callable[[PortalRecord, CommunityClient, str, RoomInfo], Awaitable[None]]


async def _ignore_info(
    portal: PortalRecord, client: CommunityClient, token: str, info: RoomInfo
) -> None:
    return None


def _allow_nothing(url: str) -> None:
    return None


ERROR_BACKOFF_MAX_S = 60.0


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

    async def get(self, server: str, stream: str) -> int:
        record = await self._cursors.get_cursor(self._poller, "", stream)
        if record is None:
            record = await self._cursors.get_cursor(self._legacy_poller, "", stream)
        return record.seqno if record and record.seqno is not None else 0

    async def set(self, server: str, stream: str, value: int) -> None:
        await self._cursors.set_cursor(self._poller, "", stream, seqno=value)


@dataclass
class ServerLink:
    """The bot's client for one server, the portals it reads there, and its poll task."""

    client: CommunityClient
    portals: dict[str, int] = field(default_factory=dict)  # room token -> portal id
    task: asyncio.Task[None] | None = None


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
    ) -> None:
        self._links = links
        self._portals = portals
        self._handle_item = handle_item
        self._portal_lock = portal_lock
        self._poll_interval = poll_interval
        # after the n-th failed poll in a row: 2^n poll intervals, at most ERROR_BACKOFF_MAX_S
        self._error_backoff = Backoff(2 * poll_interval, ERROR_BACKOFF_MAX_S)
        self._on_room_info = on_room_info
        # Attachments of a followed server's posts may be fetched (AllowedDownloads.allow).
        self._allow_downloads = allow_downloads

    def link(self, server: CommunityServerRef) -> ServerLink:
        return self._links.link(server)

    def client_for(self, portal: PortalRecord) -> tuple[CommunityClient, str]:
        """The bot's client and the room token of a community portal."""
        return self._links.client_for(portal)

    async def start(self) -> None:
        """Resume every active community portal."""
        for portal in await self._portals.list_active(PortalKind.COMMUNITY):
            server, token = parse_community_key(portal.session_key)
            try:
                await self._follow(server, token, portal.id)
            except SessionError as e:
                log.warning("Cannot resume community room %s: %s", portal.session_key, e)

    async def stop(self) -> None:
        tasks = [link.task for link in self._links.all() if link.task]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        info = await link.client.join(token)
        link.portals[token] = portal_id
        self._allow_downloads(server.base_url)
        portal = await self._portals.get_by_id(portal_id)
        if portal is not None:
            async with self._portal_lock(portal_id):
                await self._on_room_info(portal, link.client, token, info)
        if link.task is None or link.task.done():
            link.task = asyncio.create_task(self._poll_loop(link), name=f"sogs {server.base_url}")

    def unfollow(self, portal: PortalRecord) -> None:
        server, token = parse_community_key(portal.session_key)
        link = self.link(server)
        link.portals.pop(token, None)
        link.client.leave(token)

    async def _poll_loop(self, link: ServerLink) -> None:
        failures = 0
        while link.portals:
            try:
                more = await self._poll_once(link)
                failures = 0
            except Exception as e:  # the loop must outlive any one failure; nothing was committed
                failures += 1
                delay = self._error_backoff.delay(failures)
                where = link.client.server.base_url
                if isinstance(e, SessionError):
                    log.warning("Polling %s failed (%s); retrying in %.0f s", where, e, delay)
                else:
                    log.exception("Handling a poll of %s failed; retrying in %.0f s", where, delay)
                await asyncio.sleep(delay)
                continue
            if not more:
                await asyncio.sleep(self._poll_interval)

    async def _poll_once(self, link: ServerLink) -> bool:
        """One poll of every room of the server; True if a room has more waiting."""
        result = await link.client.poll()
        more = False
        for token, update in result.rooms.items():
            portal_id = link.portals.get(token)
            if portal_id is None:
                continue
            if update.error is not None:
                log.warning("Community room %s: %s", token, update.error)
                continue
            for bad in update.bad_items:
                log.warning(
                    "Dropping a malformed item in %s (%s): %s", token, bad.where, bad.error
                )
            portal = await self._portals.get_by_id(portal_id)
            if portal is None or portal.unbridged_at is not None:
                continue
            async with self._portal_lock(portal_id):
                if update.info is not None and update.info.details is not None:
                    await self._on_room_info(portal, link.client, token, update.info.details)
                for item in update.items:
                    await self._handle_item(portal, item)
            await link.client.commit_room(token, update.seqno)
            more = more or update.more
        return more
