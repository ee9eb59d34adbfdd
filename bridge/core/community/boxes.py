"""The inboxes and outboxes of the bridge's identities on each community server (§5.10).

Every identity that has a blinded id on a bridged server has a box there: the bot (its
``/inbox/since`` and ``/outbox/since`` ride in the server's room poll, one ``/batch``) and each
login whose Matrix owner is in a portal of that server (one small ``/batch`` of its own, as a
request is signed by one identity). Items are handed in id order to
:class:`~bridge.core.community.dms.CommunityDMs`; each box's cursor is committed after its
items were handled and recorded, so nothing is fetched twice and a crash re-delivers instead
of losing (docs/architecture.md §4). A transient failure holds the box at the item before.

With ``communities.blinded_dms`` off (or, for the bot, no admin named by user id) nothing is
bridged: the cursors still move, and the identity's posts say ``blocksCommunityMessageRequests``
so that the apps do not offer to message it (README, Community direct messages).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from bridge.core.community.dms import CommunityDMs
from bridge.core.community.service import CursorRepoStore
from bridge.core.logins import Login, LoginManager
from bridge.core.portal.failures import Transient, attempt_or_park
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.keys import Identity
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.cursors import CursorStore
from bridge.session.sogs.models import InboxEntry, PollResult
from bridge.session.sogs.urls import CommunityServerRef

log = logging.getLogger("bridge.core.community.boxes")

# How often the logins read on a server are worked out again (who is in its portals).
READERS_REFRESH_S = 120.0

# The Matrix users joined to a room (mxid list), from the state store or the homeserver.
Members = Callable[[str], Awaitable[Sequence[str]]]


class IdentityCursors:
    """A login's box cursors beside the bot's, in the server's store: ``<stream>:<05 id>``."""

    def __init__(self, store: CursorStore, session_id: str) -> None:
        self._store = store
        self._suffix = session_id

    async def get(self, server: str, stream: str) -> int:
        return await self._store.get(server, f"{stream}:{self._suffix}")

    async def set(self, server: str, stream: str, value: int) -> None:
        await self._store.set(server, f"{stream}:{self._suffix}", value)


@dataclass
class _Readers:
    logins: list[Login] = field(default_factory=list)
    next_refresh: float = 0.0
    known_logins: int = -1  # how many logins there were at the last refresh


class CommunityBoxes:
    """Reads, bridges and commits the boxes of the bot and of the logins, per server."""

    def __init__(
        self,
        *,
        dms: CommunityDMs,
        logins: LoginManager,
        portals: PortalRepo,
        cursors: CursorRepo,
        http: aiohttp.ClientSession,
        members: Members,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dms = dms
        self._logins = logins
        self._portals = portals
        self._cursors = cursors
        self._http = http
        self._members = members
        self.enabled = enabled
        self._clock = clock
        self._readers: dict[CommunityServerRef, _Readers] = {}
        self._clients: dict[tuple[str, CommunityServerRef], CommunityClient] = {}

    def bot_reads(self) -> bool:
        """Whether the bot's blinded DMs reach Matrix (someone to show them to)."""
        return self.enabled and bool(self._dms.bot_owners)

    def blocks_requests(self, *, is_bot: bool) -> bool:
        """``blocksCommunityMessageRequests`` of an identity's posts: True when its blinded
        DMs would reach nobody."""
        return not (self.bot_reads() if is_bot else self.enabled)

    async def after_poll(
        self, client: CommunityClient, result: PollResult, portal_ids: Sequence[int]
    ) -> bool:
        """Handle the bot's boxes of ``result``, then read each login's; True if a box
        returned a full page (poll again at once)."""
        owners = list(self._dms.bot_owners) if self.bot_reads() else []
        more = await self._boxes(client, owners, result)
        if not self.enabled:
            return more
        for login in await self._login_readers(client.server, portal_ids):
            reader = self._client(login.identity, client)
            try:
                box = await reader.poll()
            except Exception as e:  # one login's box must not hold the server's poll
                log.warning(
                    "Reading the community DMs of a login on %s failed: %s",
                    client.server.base_url,
                    e,
                )
                continue
            assert login.record.mxid is not None
            more = await self._boxes(reader, [login.record.mxid], box) or more
        return more

    def _client(self, identity: Identity, bot_client: CommunityClient) -> CommunityClient:
        server = bot_client.server
        key = (identity.session_id.value, server)
        found = self._clients.get(key)
        if found is None:
            store = IdentityCursors(
                CursorRepoStore(self._cursors, server), identity.session_id.value
            )
            found = self._clients[key] = CommunityClient(
                self._http, identity, server, cursors=store
            )
        return found

    async def _login_readers(
        self, server: CommunityServerRef, portal_ids: Sequence[int]
    ) -> list[Login]:
        """The logins whose owner is joined to one of the server's portals (cached)."""
        readers = self._readers.setdefault(server, _Readers())
        everyone = self._logins.cached_logins()
        # A new login (or logout) counts at once; a user joining a portal within the refresh.
        if self._clock() < readers.next_refresh and len(everyone) == readers.known_logins:
            return readers.logins
        joined: set[str] = set()
        for portal in (await self._portals.get_many(list(portal_ids))).values():
            if portal.mxid is not None:
                try:
                    joined.update(await self._members(portal.mxid))
                except Exception as e:
                    log.info("Cannot list the members of %s: %s", portal.mxid, e)
        readers.logins = [login for login in everyone if login.record.mxid in joined]
        readers.next_refresh = self._clock() + READERS_REFRESH_S
        readers.known_logins = len(everyone)
        return readers.logins

    async def _boxes(
        self, client: CommunityClient, owners: Sequence[str], result: PollResult
    ) -> bool:
        if result.inbox_error is not None:
            log.warning("Community DMs of %s: %s", client.server.base_url, result.inbox_error)
            return False
        for bad in result.bad_items:
            log.warning(
                "Dropping a malformed %s item of %s: %s",
                bad.where,
                client.server.base_url,
                bad.error,
            )
        inbox_to = await self._handle(client, owners, result.inbox, result.inbox_id)
        outbox_to = await self._handle(client, owners, result.outbox, result.outbox_id)
        await client.commit_boxes(inbox_to, outbox_to)
        held = inbox_to != result.inbox_id or outbox_to != result.outbox_id
        return result.box_more and not held

    async def _handle(
        self,
        client: CommunityClient,
        owners: Sequence[str],
        entries: Sequence[InboxEntry],
        done: int,
    ) -> int:
        """Handle ``entries`` in order; the id the box's cursor may move to."""
        for entry in sorted(entries, key=lambda e: e.id):
            if not owners:
                continue  # nobody to show it to: skipped (README)

            async def work(entry: InboxEntry = entry) -> None:
                await self._dms.handle_entry(client, owners, entry)

            async def park(error: BaseException, tries: int, entry: InboxEntry = entry) -> None:
                log.error(
                    "Dropping community DM %d of %s after %d tries: %s",
                    entry.id,
                    client.server.base_url,
                    tries,
                    error,
                )

            try:
                await attempt_or_park(work, f"community DM {entry.id}", park)
            except Transient as e:
                log.warning("Community DMs of %s must wait: %s", client.server.base_url, e)
                return entry.id - 1
        return done
