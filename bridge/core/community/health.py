"""``status`` lines of the community side: one per community server the portals use."""

from __future__ import annotations

import asyncio

from bridge.core.community.service import Communities
from bridge.core.portal.health import Check, run_check
from bridge.db.records import PortalKind
from bridge.db.repos.portals import PortalRepo
from bridge.session.sogs.client import CommunityClient


async def _capabilities(client: CommunityClient) -> str:
    # The cheapest request a community server answers (docs/session-protocol.md §5.3).
    return ", ".join(await client.capabilities())


async def community_checks(communities: Communities, portals: PortalRepo) -> list[Check]:
    """Ask each community server of an active portal for its capabilities, in parallel."""
    clients: dict[tuple[str, bytes], CommunityClient] = {}
    for portal in await portals.list_active(PortalKind.COMMUNITY):
        client, _ = communities.client_for(portal)
        clients.setdefault((client.server.base_url, client.server.pubkey), client)
    checks = [
        run_check(f"community server {url}", _capabilities(client))
        for (url, _), client in clients.items()
    ]
    return list(await asyncio.gather(*checks))
