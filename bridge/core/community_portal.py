"""Builds the community side of the bridge: poller, inbound, outbound and their helpers.

``app.py`` calls :func:`build_community` once; the result gives the pieces the rest of the
bridge needs: :class:`~bridge.core.communities.Communities` (commands, start/stop), the portal
handler for Matrix events, and the outbox deliverers of every community row kind.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from mautrix.appservice import IntentAPI

from bridge.core.communities import Communities
from bridge.core.community_inbound import CommunityInbound
from bridge.core.community_info import CommunityRoomInfo
from bridge.core.community_media import CommunityMediaIn, UploadLimit
from bridge.core.community_outbound import CommunityOutbound
from bridge.core.community_reactions import CommunityReactionsIn
from bridge.core.community_relations import CommunityRelations
from bridge.core.community_session import CommunityActors
from bridge.core.downloads import AllowedDownloads
from bridge.core.ghosts import GhostManager
from bridge.core.logins import LoginManager
from bridge.core.outbox_sender import Deliver
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.reads import media_download, member_display_name
from bridge.session.keys import Identity


@dataclass(frozen=True)
class CommunityPortal:
    """The community side, wired."""

    communities: Communities
    outbound: CommunityOutbound
    deliverers: dict[str, Deliver]


def build_community(
    *,
    http: aiohttp.ClientSession,
    bot: IntentAPI,
    bot_identity: Identity,
    ghosts: GhostManager,
    logins: LoginManager,
    portals: PortalRepo,
    messages: MessageRepo,
    cursors: CursorRepo,
    outbox: OutboxRepo,
    kv: KVRepo,
    downloads: AllowedDownloads,
    ghost_pattern: re.Pattern[str],
    relay_template: str,
    portal_lock: Callable[[int], asyncio.Lock],
    poll_interval: float,
) -> CommunityPortal:
    """Wire the community poller, the inbound and outbound paths and room-info sync."""
    actors = CommunityActors(http=http, logins=logins, bot_identity=bot_identity, portals=portals)
    holder: list[Communities] = []  # media needs the bot's clients, Communities needs inbound
    media = CommunityMediaIn(
        client_for=lambda portal: holder[0].client_for(portal),
        downloads=downloads,
        upload_limit=UploadLimit(bot),
    )
    inbound = CommunityInbound(
        ghosts=ghosts,
        messages=messages,
        cursors=cursors,
        is_own_identity=actors.is_own_identity,
        reactions=CommunityReactionsIn(
            ghosts=ghosts, messages=messages, is_own_identity=actors.is_own_identity
        ),
        media=media,
        bot=bot,
    )
    info = CommunityRoomInfo(bot=bot, portals=portals, kv=kv)
    communities = Communities(
        http=http,
        bot_identity=bot_identity,
        portals=portals,
        cursors=cursors,
        handle_item=inbound.handle,
        portal_lock=portal_lock,
        poll_interval=poll_interval,
        on_room_info=info.apply,
        allow_downloads=downloads.allow,
    )
    holder.append(communities)
    relations = CommunityRelations(
        actors=actors,
        messages=messages,
        outbox=outbox,
        relay_template=relay_template,
        portal_lock=portal_lock,
    )

    outbound = CommunityOutbound(
        actors=actors,
        relations=relations,
        messages=messages,
        outbox=outbox,
        ghost_pattern=ghost_pattern,
        relay_template=relay_template,
        portal_lock=portal_lock,
        download_media=media_download(bot),
        display_name=functools.partial(member_display_name, bot),
    )
    return CommunityPortal(communities, outbound, outbound.deliverers())
