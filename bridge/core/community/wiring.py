"""Builds the community kind: per-server pollers, inbound, outbound and their helpers.

:func:`build_community` is called once by :mod:`bridge.app`; the :class:`CommunityKind` it
returns is what the rest of the bridge needs: the Matrix-side handler, the outbox deliverers
of every community row kind, :class:`~bridge.core.community.service.Communities`, the
:class:`~bridge.core.community.portals.CommunityPortals` of the portal commands and of alias
queries, and the start/stop of the pollers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from mautrix.appservice import IntentAPI
from mautrix.types import RoomID

from bridge.config import Config
from bridge.core.community.actors import CommunityActors
from bridge.core.community.aliases import alias_prefix
from bridge.core.community.backfill import BackfillPolicy
from bridge.core.community.boxes import CommunityBoxes
from bridge.core.community.dms import CommunityDMs
from bridge.core.community.inbound import CommunityInbound
from bridge.core.community.media import CommunityMediaIn, UploadLimit
from bridge.core.community.outbound import CommunityOutbound
from bridge.core.community.portals import AliasSettings, CommunityPortals
from bridge.core.community.reactions import CommunityReactionsIn
from bridge.core.community.relations import CommunityRelations
from bridge.core.community.room_info import CommunityRoomInfo
from bridge.core.community.service import Communities, CommunityLinks
from bridge.core.portal.events import PortalHandler
from bridge.core.portal.kind import PortalDeps
from bridge.core.portal.outbox import Deliver
from bridge.db.records import PortalKind
from bridge.matrix.reads import media_download, member_display_name
from bridge.session.sent_clock import SentClock
from bridge.stopping import cancel_and_wait

log = logging.getLogger("bridge.core.community.wiring")


@dataclass
class CommunityKind:
    """The community side, wired; nothing runs until :meth:`start`."""

    communities: Communities
    outbound: CommunityOutbound
    portals: CommunityPortals
    portal_kind: PortalKind = PortalKind.COMMUNITY
    _resume: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def handler(self) -> PortalHandler:
        return self.outbound

    @property
    def deliverers(self) -> Mapping[str, Deliver]:
        return self.outbound.deliverers()

    async def start(self) -> None:
        """Resume every community portal in the background (joining takes a round trip per
        room, and a server may be slow)."""
        self._resume = asyncio.create_task(self._resume_all(), name="communities-start")

    async def _resume_all(self) -> None:
        try:
            await self.communities.start()
        except Exception:
            log.exception("Resuming the community rooms failed")

    async def stop(self) -> None:
        if self._resume is not None:
            await cancel_and_wait(self._resume)
        await self.communities.stop()


def admin_users(config: Config) -> list[str]:
    """The bridge admins named by user id in ``bridge.permissions``: who sees the bot's
    community DMs (a domain or ``*`` names nobody to invite)."""
    return [
        who
        for who, level in config.bridge.permissions.items()
        if level == "admin" and who.startswith("@")
    ]


def joined_members(bot: IntentAPI) -> Callable[[str], Awaitable[list[str]]]:
    """The joined members of a room, asked of the homeserver (the state store may know only
    part of a room after a restart)."""

    async def members(room_id: str) -> list[str]:
        return [str(m) for m in await bot.get_joined_members(RoomID(room_id))]

    return members


def build_community(deps: PortalDeps, sent_clock: SentClock) -> CommunityKind:
    """Wire the community pollers, the inbound and outbound paths and room-info sync.
    ``sent_clock`` gives the posts' sent timestamps: the one every Session identity of the
    bridge draws from (docs/session-protocol.md §2.11)."""
    repos, bot, config = deps.repos, deps.bot, deps.config
    relay_template = config.bridge.relay.message_template
    if deps.community_http is None:
        raise RuntimeError("community portals need the community client (PortalDeps)")
    # Users name community servers: never deps.http, which reaches any address.
    http = deps.community_http
    links = CommunityLinks(http=http, bot_identity=deps.bot_login.identity, cursors=repos.cursors)
    actors = CommunityActors(
        http=http,
        logins=deps.logins,
        bot_identity=deps.bot_login.identity,
        portals=repos.portals,
        bot_name=config.appservice.bot_displayname,
    )
    media = CommunityMediaIn(
        client_for=links.client_for, downloads=deps.downloads, upload_limit=UploadLimit(bot)
    )
    inbound = CommunityInbound(
        ghosts=deps.ghosts,
        messages=repos.messages,
        cursors=repos.cursors,
        is_own_identity=actors.is_own_identity,
        reactions=CommunityReactionsIn(
            ghosts=deps.ghosts, messages=repos.messages, is_own_identity=actors.is_own_identity
        ),
        media=media,
        bot=bot,
        own_ids=deps.own_ids,
    )
    dms = CommunityDMs(
        portals=repos.portals,
        messages=repos.messages,
        outbox=repos.outbox,
        ghosts=deps.ghosts,
        rooms=deps.rooms,
        bot=bot,
        bot_mxid=config.bot_mxid,
        logins=deps.logins,
        actors=actors,
        bot_owners=admin_users(config),
        ghost_pattern=deps.ghost_pattern,
        portal_lock=deps.portal_lock,
        sent_clock=sent_clock,
    )
    boxes = CommunityBoxes(
        dms=dms,
        logins=deps.logins,
        portals=repos.portals,
        cursors=repos.cursors,
        http=http,
        members=joined_members(bot),
        enabled=config.communities.blinded_dms,
    )
    actors.blocks_requests = lambda is_bot: boxes.blocks_requests(is_bot=is_bot)
    communities = Communities(
        links=links,
        portals=repos.portals,
        handle_item=inbound.handle,
        portal_lock=deps.portal_lock,
        poll_interval=config.session.community_poll_interval,
        on_room_info=CommunityRoomInfo(bot=bot, portals=repos.portals, kv=repos.kv).apply,
        allow_downloads=deps.downloads.allow,
        dead_letters=deps.dead_letters,
        supervisor=deps.supervisor,
        on_boxes=boxes.after_poll,
        backfill=BackfillPolicy(
            config.communities.backfill_messages, config.communities.backfill_days
        ),
    )
    relations = CommunityRelations(
        actors=actors,
        messages=repos.messages,
        outbox=repos.outbox,
        relay_template=relay_template,
        portal_lock=deps.portal_lock,
        may_relay=deps.may_relay,
        sent_clock=sent_clock,
    )
    outbound = CommunityOutbound(
        actors=actors,
        relations=relations,
        messages=repos.messages,
        outbox=repos.outbox,
        ghost_pattern=deps.ghost_pattern,
        relay_template=relay_template,
        portal_lock=deps.portal_lock,
        download_media=media_download(bot),
        display_name=functools.partial(member_display_name, bot),
        may_relay=deps.may_relay,
        sent_clock=sent_clock,
        dms=dms,
    )
    portals = CommunityPortals(
        communities=communities,
        rooms=deps.rooms,
        portals=repos.portals,
        bot=bot,
        settings=AliasSettings(
            prefix=alias_prefix(config.bridge.username_template),
            domain=config.homeserver.domain,
            public=config.bridge.public_portals,
        ),
    )
    return CommunityKind(communities, outbound, portals)
