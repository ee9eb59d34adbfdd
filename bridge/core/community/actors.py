"""The Session side of Matrix → community traffic: which identity acts, and its client.

Shared by the outbound message path (:mod:`bridge.core.community.outbound`) and the path for
edits, reactions and redactions (:mod:`bridge.core.community.relations`). A Matrix user acts
through their own Session login (blinded per server, docs/session-protocol.md §1.5) or, for relayed
messages, through the bot's identity. Server errors become the outbox's temporary or permanent
failures.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from bridge.core.community.service import parse_community_key
from bridge.core.logins import LoginManager
from bridge.core.made_ids import MadeChoice
from bridge.core.made_ids_send import MadeSender
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.db.records import MessageRecord, OutboxRecord, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.session.blinding import blind15_id
from bridge.session.errors import InvalidInput
from bridge.session.keys import Identity
from bridge.session.messages import Profile
from bridge.session.netguard import DestinationRefused
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.errors import CommunityError, CommunityUnreachable, RoomNotFound
from bridge.session.sogs.urls import CommunityServerRef

log = logging.getLogger("bridge.core.community.actors")

T = TypeVar("T")


class CommunityActors:
    """Session identities acting in community rooms, with one client per (identity, server)."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        logins: LoginManager,
        bot_identity: Identity,
        portals: PortalRepo,
        bot_name: str | None = None,
    ) -> None:
        self._http = http
        self._logins = logins
        self.bot_identity = bot_identity
        self._bot_name = bot_name
        self._portals = portals
        # (Session id, server): a server is its URL and its key (docs/session-protocol.md §5.1).
        self._clients: dict[tuple[str, CommunityServerRef], CommunityClient] = {}
        self._blinded: dict[tuple[str, bytes], str] = {}
        # Whether the bot's (True) or a login's (False) blinded DMs reach nobody: set by the
        # wiring from bridge.core.community.boxes.
        self.blocks_requests: Callable[[bool], bool] = lambda is_bot: False
        # Bridge-made identities (docs/migration.md §7), set by the app when they are on.
        self.made: MadeSender | None = None

    async def portal_of(self, row: OutboxRecord) -> PortalRecord:
        """The still-bridged portal of an outbox row, else a permanent failure."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.unbridged_at is not None:
            raise PermanentFailure("the room is no longer bridged")
        return portal

    async def identity_of(self, row: OutboxRecord) -> Identity:
        """The identity a queued post goes out under: its login, or the bot for relay."""
        if row.login_id is None:
            return self.bot_identity
        login = await self._logins.login_by_id(row.login_id)
        if login is None:
            raise PermanentFailure("the Session login this message was queued for is gone")
        return login.identity

    async def login_id_of(self, mxid: str) -> int | None:
        """The id of ``mxid``'s first Session login, or ``None`` if they have none."""
        mine = await self._logins.logins_of(mxid)
        return mine[0].record.id if mine else None

    def profile(self, name: str, *, relayed: bool) -> Profile:
        """The profile a post carries: Session apps name a post's author after it
        (docs/session-protocol.md §5.11, §2.13).

        A login's post shows its sender's current Matrix name (read when the event was
        handled). A relayed post is the bot's and shows the bot's name (``bot_displayname``):
        the profile names the author id, which all relayed posts share, while each relayed
        sender's name is in the text (the relay template).
        """
        return Profile(display_name=(self._bot_name or None) if relayed else (name or None))

    async def made_choice(self, portal: PortalRecord, mxid: str, name: str) -> MadeChoice | None:
        """``mxid``'s bridge-made identity, if their message goes out as it here."""
        return None if self.made is None else await self.made.choose(portal, mxid, name)

    async def post_profile(self, identity: Identity, name: str, *, relayed: bool) -> Profile:
        """:meth:`profile`, or the published profile of a bridge-made identity."""
        if self.made is not None and not relayed:
            found = await self.made.profile_of(identity.session_id.value, name)
            if found is not None:
                return found
        return self.profile(name, relayed=relayed)

    def blocks(self, *, relayed: bool) -> bool:
        """``blocksCommunityMessageRequests`` of a post (docs/session-protocol.md §5.10):
        True when the author's blinded DMs would reach nobody on Matrix, so that the apps do
        not offer to message it. Like the apps, every post says it, true or false."""
        return self.blocks_requests(relayed)

    def client(self, identity: Identity, portal: PortalRecord) -> tuple[CommunityClient, str]:
        """``identity``'s client for the portal's server, and the room token."""
        server, token = parse_community_key(portal.session_key)
        key = (identity.session_id.value, server)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = CommunityClient(self._http, identity, server)
        return client, token

    def blinded(self, identity: Identity, portal: PortalRecord) -> str:
        """``identity``'s id on the portal's server (the author id of its posts)."""
        server, _ = parse_community_key(portal.session_key)
        return self._blind(identity, server.pubkey)

    def _blind(self, identity: Identity, server_pubkey: bytes) -> str:
        key = (identity.session_id.value, server_pubkey)
        found = self._blinded.get(key)
        if found is None:
            found = self._blinded[key] = blind15_id(identity, server_pubkey).value
        return found

    def is_own_identity(self, server_pubkey: bytes, author: str) -> bool:
        """Whether ``author`` (a blinded id) is the bot or a logged-in user on that server."""
        made = self.made.identities() if self.made is not None else []
        identities = [self.bot_identity, *self._logins.cached_identities(), *made]
        return any(self._blind(i, server_pubkey) == author for i in identities)

    def is_bot(self, author: str, portal: PortalRecord) -> bool:
        """Whether ``author`` is the bot's id on the portal's server (a relayed post)."""
        return author == self.blinded(self.bot_identity, portal)

    async def author_identity(
        self, record: MessageRecord, mxid: str, portal: PortalRecord
    ) -> tuple[Identity, bool]:
        """The identity that posted ``record`` for ``mxid``, and whether it was relayed.

        Only the Matrix user who sent the message may act on it (docs/architecture.md §5); the
        identity
        is the one that posted it, so the community server accepts the edit or deletion.
        """
        if record.sender_mxid != mxid or record.sender_session_id is None:
            raise PermanentFailure("only your own messages can be changed on Session")
        if self.is_bot(record.sender_session_id, portal):
            return self.bot_identity, True
        for login in await self._logins.logins_of(mxid):
            if self.blinded(login.identity, portal) == record.sender_session_id:
                return login.identity, False
        made = self.made.identity_of(mxid) if self.made is not None else None
        if made is not None and self.blinded(made, portal) == record.sender_session_id:
            return made, False  # the user's bridge-made identity (docs/migration.md §7)
        raise PermanentFailure("the Session login that sent this message is gone")

    async def login_identity(
        self, mxid: str, author: str, portal: PortalRecord
    ) -> Identity | None:
        """``mxid``'s login (or bridge-made identity, docs/migration.md §7) whose id on the
        portal's server is ``author``, if any."""
        for login in await self._logins.logins_of(mxid):
            if self.blinded(login.identity, portal) == author:
                return login.identity
        made = self.made.identity_of(mxid) if self.made is not None else None
        if made is not None and self.blinded(made, portal) == author:
            return made
        return None


# What a refusal means for the sender, by HTTP status (docs/session-protocol.md §5).
_REFUSALS = {
    400: "the community server found it malformed",
    403: "the community server does not allow it (banned, or no permission)",
    # A 404 names what the request was about (the message edited, deleted or reacted to, or
    # its room), never the server, which answered: "no such message" or "no such room".
    404: "the message or its room is no longer on the community server (deleted?)",
    413: "it is too large for the community server",
    425: "the community server refused it: the bridge's clock seems to be off",
}


INTERNAL_SERVER = (
    "the community server is on an internal address, which this bridge connects to only for "
    "hosts its admin listed"
)


async def call_server(work: Awaitable[T]) -> T:
    """Await a community request, mapping its errors to the outbox's failure kinds.

    The failure texts reach the Matrix sender, so they describe, and never name the server's
    address or echo its reply; those details are logged here.
    """
    try:
        return await work
    except CommunityUnreachable as e:
        log.info("Community request failed: %s", e)
        raise TemporaryFailure("the community server cannot be reached") from e
    except CommunityError as e:
        log.info("Community request refused: %s", e)
        if e.status is not None and (e.status >= 500 or e.status == 429):
            raise TemporaryFailure(f"the community server is busy (HTTP {e.status})") from e
        text = _REFUSALS.get(e.status or 0, f"the community server refused it (HTTP {e.status})")
        if isinstance(e, RoomNotFound):
            text = "the room is no longer on the community server"
        raise PermanentFailure(text) from e
    except DestinationRefused as e:  # its words name the address: logged, never shown
        log.info("Community request not made: %s", e)
        raise PermanentFailure(INTERNAL_SERVER) from e
    except InvalidInput as e:
        raise PermanentFailure(str(e)) from e
