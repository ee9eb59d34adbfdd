"""Small pieces of the Session side the app owns, kept out of bridge/app.py: its HTTP clients
(the file server it uploads to among them), the bridged community servers, and the admin's
``status`` checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from mautrix.appservice import IntentAPI

from bridge.config import SessionConfig
from bridge.core.community.health import community_checks
from bridge.core.community.service import Communities, parse_community_key
from bridge.core.direct.health import network_checks
from bridge.core.downloads import AllowedDownloads
from bridge.core.portal.health import Check, database_check, homeserver_check
from bridge.db.engine import Database
from bridge.db.records import PortalKind
from bridge.db.repos.portals import PortalRepo
from bridge.session.files import DEFAULT_FILE_SERVER, FileServerClient
from bridge.session.netguard import NamedServers, guarded_session
from bridge.session.snode.rpc import SnodeClient
from bridge.session.sogs.urls import CommunityServerRef

__all__ = ["OpenClients", "SessionHttp", "community_servers", "status_checks", "upload_files"]

log = logging.getLogger("bridge.app_session")


def upload_files(session: SessionConfig, http: aiohttp.ClientSession) -> FileServerClient:
    """The file server the bridge uploads to; its URLs carry #p=<Ed25519 key> unless it is
    the default server (docs/session-protocol.md §7.1)."""
    key = session.file_server_ed25519_pubkey or None
    files = FileServerClient(http, session.file_server, server_pubkey=key)
    if files.server_pubkey is None and files.base_url != DEFAULT_FILE_SERVER:
        log.warning(
            "session.file_server_ed25519_pubkey is empty: Android does not fetch the files "
            "and avatars the bridge uploads to %s without it",
            files.base_url,
        )
    return files


async def community_servers(portals: PortalRepo) -> list[CommunityServerRef]:
    """The servers of the bridged community rooms, each once."""
    servers: dict[CommunityServerRef, None] = {}  # a server is its URL and its key
    for portal in await portals.list_active(PortalKind.COMMUNITY):
        server, _ = parse_community_key(portal.session_key)
        servers.setdefault(server)
    return list(servers)


async def status_checks(
    *,
    intent: IntentAPI,
    homeserver: str,
    db: Database,
    portals: PortalRepo,
    communities: Communities | None,
    network: tuple[SnodeClient, str] | None,
) -> list[Check]:
    """The admin's ``status``: the homeserver, the database, then the Session side (the
    community servers; the network as ``(storage client, bot's Session ID)``)."""

    async def ours() -> list[Check]:
        return [await homeserver_check(intent, homeserver), await database_check(db)]

    groups: list[Awaitable[list[Check]]] = [ours()]  # each bounded in time; side by side
    if communities is not None:
        groups.append(community_checks(communities, portals))
    if network is not None:
        groups.append(network_checks(*network))
    return [check for group in await asyncio.gather(*groups) for check in group]


@dataclass
class OpenClients:
    """The HTTP clients of :class:`SessionHttp` once opened."""

    http: aiohttp.ClientSession  # the Session network and the bridge's own uploads
    files: FileServerClient  # where the bridge uploads
    download_http: aiohttp.ClientSession
    download_files: FileServerClient
    community_http: aiohttp.ClientSession


class SessionHttp:
    """The bridge's HTTP clients toward Session, opened at start and closed at stop.

    Downloads for Session users have their own client, which connects only where the
    allow-list lets it (no SSRF, bridge/core/downloads.py). Community servers are named by
    users (`bridge`, `open`): their client reaches internal addresses only on the hosts the
    operator listed (no SSRF, README, Security)."""

    def __init__(self, session: SessionConfig) -> None:
        self._session = session
        self.open: OpenClients | None = None

    def start(self, downloads: AllowedDownloads) -> OpenClients:
        http = aiohttp.ClientSession()
        download_http = guarded_session(downloads)
        self.open = OpenClients(
            http=http,
            files=upload_files(self._session, http),
            download_http=download_http,
            download_files=FileServerClient(download_http, self._session.file_server),
            community_http=guarded_session(NamedServers(self._session.internal_hosts)),
        )
        return self.open

    async def download(self, url: str) -> bytes:
        """A file a Session user sent (through the allow-list's client)."""
        if self.open is None:
            raise RuntimeError("download before start")
        return await self.open.download_files.download(url)

    def closing(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The stop steps that close the clients, by name."""
        if self.open is None:
            return []
        clients = self.open
        return [
            ("the HTTP client", clients.http.close),
            ("the download client", clients.download_http.close),
            ("the community client", clients.community_http.close),
        ]
