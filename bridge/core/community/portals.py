"""Community portals as Matrix users reach them: ``open``, ``bridge``, ``unbridge`` and the
portal alias (:mod:`bridge.core.community.aliases`).

One community room has at most one live portal. ``open`` on a room that already has one
invites the caller to it; whoever asked for a new portal is made its admin (power 100). Every
portal gets its alias in the room directory (the canonical alias of rooms the bot created);
an alias query for it (docs/matrix-side.md §1.5) publishes it again if it went missing and, with
``bridge.public_portals``, creates the portal of another room of a server the bridge already
follows. Only followed servers: an alias is chosen by whoever joins it, and the bridge must
not be made to contact any server it is told (no SSRF).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.errors import IntentError, MatrixRequestError, MNotFound
from mautrix.types import CanonicalAliasStateEventContent, EventType, RoomAlias, RoomID

from bridge.core.community.aliases import alias_localpart, alias_room, matches
from bridge.core.community.refusals import lookup_refusal
from bridge.core.community.service import (
    Communities,
    CommunityJoinError,
    community_key,
    parse_community_key,
)
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.rooms import Channel
from bridge.session.errors import SessionError

log = logging.getLogger("bridge.core.community.portals")


@dataclass(frozen=True)
class Opened:
    """What ``open`` did: a new portal (``created``), or an invite to the live one
    (``invited`` is False when the user was in it already)."""

    portal: PortalRecord
    name: str
    alias: str
    created: bool
    invited: bool


@dataclass(frozen=True)
class AliasSettings:
    """The alias prefix (``bridge.username_template`` before ``{userid}``), the homeserver
    domain, and whether new portals are public (``bridge.public_portals``)."""

    prefix: str
    domain: str
    public: bool


class CommunityPortals:
    """Opens, bridges and unbridges community portals; answers alias queries."""

    def __init__(
        self,
        *,
        communities: Communities,
        rooms: PortalRooms,
        portals: PortalRepo,
        bot: IntentAPI,
        settings: AliasSettings,
    ) -> None:
        self._communities = communities
        self._rooms = rooms
        self._portals = portals
        self._bot = bot
        self._settings = settings
        # One creation at a time: `open`, `bridge` and alias queries must not make two
        # portals of one community room.
        self._lock = asyncio.Lock()

    async def resolve(self, url: str) -> tuple[str, Channel, str]:
        """The portal key, bridge-info channel and topic of a community URL, checked against
        its server (:class:`CommunityJoinError` with the reason for the user)."""
        server, token, info = await self._communities.lookup(url)
        channel = Channel(
            id=token,
            displayname=info.name or token,
            network_id=server.base_url.split("://", 1)[-1],
            network_name=server.base_url,
            external_url=server.room_url(token),
        )
        return community_key(server, token), channel, info.description

    def alias_of(self, portal: PortalRecord) -> str:
        """The portal's alias, ``#…:<domain>``."""
        return f"#{self._localpart(portal)}:{self._settings.domain}"

    def _localpart(self, portal: PortalRecord) -> str:
        server, token = parse_community_key(portal.session_key)
        return alias_localpart(self._settings.prefix, self._settings.domain, server, token)

    async def open(self, url: str, mxid: str) -> Opened:
        """A new portal room for ``mxid`` (its admin), or an invite to the live one.

        A live portal's key was checked against its server when it was made: the invite
        needs no request to the server (which may be down just now). Any other URL is looked
        up first, so a wrong key is refused before anything is created.
        """
        server, token = self._communities.parse(url)
        if invite := await self._invite_to_live(community_key(server, token), token, mxid):
            return invite
        key, channel, topic = await self.resolve(url)
        async with self._lock:
            if invite := await self._invite_to_live(key, token, mxid):
                return invite
            portal = await self._create(key, channel, topic, mxid)
        return Opened(portal, channel.displayname, self.alias_of(portal), True, True)

    async def _invite_to_live(self, key: str, token: str, mxid: str) -> Opened | None:
        portal = await self._portals.get_by_key(PortalKind.COMMUNITY, key)
        if portal is None or not portal.mxid or portal.unbridged_at is not None:
            return None
        invited = await self._rooms.invite(portal.mxid, mxid)
        return Opened(portal, portal.name or token, self.alias_of(portal), False, invited)

    async def bridge(self, room_id: str, url: str) -> Channel:
        """Make the existing ``room_id`` the portal of the community room at ``url``."""
        key, channel, _ = await self.resolve(url)
        async with self._lock:
            portal = await self._rooms.attach(room_id, PortalKind.COMMUNITY, key, channel)
        await self._publish_alias(portal, canonical=False)
        await self._follow(portal)
        return channel

    async def unbridged(self, portal: PortalRecord) -> None:
        """After ``portal`` was unbridged: its alias no longer leads to the room."""
        await self._withdraw_alias(portal)

    async def _create(
        self, key: str, channel: Channel, topic: str, mxid: str | None
    ) -> PortalRecord:
        users = [mxid] if mxid else []
        portal = await self._rooms.create(
            PortalKind.COMMUNITY,
            key,
            channel,
            topic=topic,
            invitees=users,
            admins=users,
            public=self._settings.public,
        )
        await self._publish_alias(portal, canonical=True)
        await self._follow(portal)
        return portal

    async def _follow(self, portal: PortalRecord) -> None:
        try:
            await self._communities.follow(portal)
        except SessionError as e:  # the server went away since the lookup a moment ago
            server, token = parse_community_key(portal.session_key)
            raise CommunityJoinError(
                f"{lookup_refusal(server, token, e)} The room is bridged; I will keep trying "
                "to read it from the next start of the bridge."
            ) from None

    # --- the alias (docs/matrix-side.md §1.5) ----------------------------------------------------

    async def query_alias(self, alias: str) -> bool:
        """Whether ``alias`` now leads to a portal (the homeserver asked, §1.5)."""
        prefix, domain = self._settings.prefix, self._settings.domain
        room = alias_room(alias, prefix, domain)
        if room is None:
            return False
        async with self._lock:
            servers = []
            for portal in await self._portals.list_active(PortalKind.COMMUNITY):
                server, token = parse_community_key(portal.session_key)
                if portal.mxid and token == room and matches(alias, prefix, domain, server, room):
                    return await self._publish_alias(portal, canonical=False)
                servers.append(server)
            if not self._settings.public:
                return False
            for server in dict.fromkeys(servers):
                if matches(alias, prefix, domain, server, room):
                    return await self._create_on_demand(server.room_url(room))
        return False

    async def _create_on_demand(self, url: str) -> bool:
        try:
            key, channel, topic = await self.resolve(url)
            portal = await self._create(key, channel, topic, None)
        except CommunityJoinError as e:
            log.info("No portal for an alias query of %s: %s", url, e)
            return False
        log.info("Created portal %s for an alias query of %s", portal.mxid, url)
        return True

    async def _publish_alias(self, portal: PortalRecord, *, canonical: bool) -> bool:
        assert portal.mxid is not None
        localpart = self._localpart(portal)
        try:
            # override: an alias left on an older room of the same community room moves here.
            await self._bot.add_room_alias(RoomID(portal.mxid), localpart, override=True)
            if canonical:
                content = CanonicalAliasStateEventContent(RoomAlias(self.alias_of(portal)))
                await self._bot.send_state_event(
                    RoomID(portal.mxid), EventType.ROOM_CANONICAL_ALIAS, content
                )
        except (IntentError, MatrixRequestError) as e:
            log.warning("Could not publish the alias of %s: %s", portal.mxid, e)
            return False
        return True

    async def _withdraw_alias(self, portal: PortalRecord) -> None:
        # The room's own alias list, not a directory lookup: a lookup of a missing alias of
        # ours would come back to query_alias and could publish it again.
        if portal.mxid is None:
            return
        room_id, alias = RoomID(portal.mxid), self.alias_of(portal)
        try:
            listed = await self._bot.api.request(Method.GET, Path.v3.rooms[room_id].aliases)
            if alias in listed.get("aliases", []):
                await self._bot.remove_room_alias(self._localpart(portal))
            canonical = await self._bot.get_state_event(room_id, EventType.ROOM_CANONICAL_ALIAS)
            if (
                isinstance(canonical, CanonicalAliasStateEventContent)
                and canonical.canonical_alias == alias
            ):
                rest = CanonicalAliasStateEventContent(alt_aliases=canonical.alt_aliases)
                await self._bot.send_state_event(room_id, EventType.ROOM_CANONICAL_ALIAS, rest)
        except MNotFound:
            return
        except (IntentError, MatrixRequestError) as e:
            log.warning("Could not remove the alias of %s: %s", portal.mxid, e)
