"""What every conversation kind (communities, direct chats, groups) is built from, and what it
gives back to the composition root.

Each kind's ``wiring`` module has one ``build_<kind>(deps)`` function taking
:class:`PortalDeps` and returning an object that satisfies :class:`ConversationKind`, so that
adding a kind is adding one package of the same shape and one line in :mod:`bridge.app`.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from mautrix.appservice import IntentAPI

from bridge.config import Config
from bridge.core.downloads import AllowedDownloads
from bridge.core.ghosts import GhostManager
from bridge.core.logins import Login, LoginManager
from bridge.core.own_ids import OwnSessionIds
from bridge.core.portal.deadletters import DeadLetters
from bridge.core.portal.events import NoLoginText, PortalHandler, default_no_login_text
from bridge.core.portal.outbox import Deliver
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalKind
from bridge.db.repos import Repositories
from bridge.supervisor import Supervisor


class PortalLocks:
    """One lock per portal, held while its Session traffic is handled in either direction."""

    def __init__(self) -> None:
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __call__(self, portal_id: int) -> asyncio.Lock:
        return self._locks[portal_id]


@dataclass(frozen=True)
class PortalDeps:
    """The shared parts every conversation kind is built from (made once by the app)."""

    config: Config
    http: aiohttp.ClientSession
    bot: IntentAPI
    bot_login: Login
    repos: Repositories
    ghosts: GhostManager
    logins: LoginManager
    rooms: PortalRooms
    downloads: AllowedDownloads
    # Matches a ghost's mxid and names the Session id in it (the converters' pills).
    ghost_pattern: re.Pattern[str]
    portal_lock: PortalLocks
    # The Session ids (blinded or not) of the bridge's own logins, and their Matrix owners.
    own_ids: OwnSessionIds
    # Whether a Matrix user (mxid) may be relayed: at least the relay level (README,
    # Permissions). Read at each event, so a changed permission table counts at once.
    may_relay: Callable[[str], bool]
    # The client for community servers, which users name: internal addresses only on hosts
    # the operator listed (session.internal_hosts; None: not started, nothing connects).
    community_http: aiohttp.ClientSession | None = None
    # Why a user without a login is not heard, worded for their permission level.
    no_login_text: NoLoginText = default_no_login_text
    # Where items that failed for good are parked, and how they are retried (§4.7).
    dead_letters: DeadLetters | None = None
    # Restarts the kind's long-running loops after a crash; readiness reads it.
    supervisor: Supervisor | None = None


class ConversationKind(Protocol):
    """What a built kind gives the app: its Matrix-side handler, its outbox deliverers, and
    the start/stop of its Session side."""

    @property
    def portal_kind(self) -> PortalKind: ...

    @property
    def handler(self) -> PortalHandler: ...

    @property
    def deliverers(self) -> Mapping[str, Deliver]: ...

    async def start(self) -> None:
        """Start reading Session for this kind's portals (must not block on the network)."""

    async def stop(self) -> None:
        """Stop every task of this kind."""
