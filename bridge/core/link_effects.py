"""What a link changes (docs/migration.md §2).

When a Session ID is linked to a Matrix account, that account is invited to every community
or group portal where the Session ID wrote lately (in a community under its blinded id
there), never to a direct chat (another user's login speaks there); its ghosts (``05…`` and
blinded) keep the history but show the configured suffix (``migration.moved_suffix``); and
its mentions become pills of the Matrix account (:class:`bridge.core.pills.LinkedIds`, read
by ``OwnSessionIds.owners``). Unlinking takes the suffix and the pills back; invites already
accepted stay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import RoomID, UserID

from bridge.core.ghosts import GhostManager
from bridge.core.pills import LinkedIds
from bridge.db.records import PortalKind, PortalRecord, now_ms
from bridge.db.repos.links import IdentityKind, IdentityRecord, LinkRepo
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.core.link_effects")

#: "Active" in a portal: wrote there within this many days.
ACTIVE_DAYS = 90
DAY_MS = 86_400_000

ServerKeyOf = Callable[[PortalRecord], bytes]
"""The community server key of a community portal (its Session IDs are blinded with it)."""


def _invites_to(portal: PortalRecord | None) -> bool:
    """Whether a linked person is invited to ``portal``: an active community or group room.
    Never a direct chat: that room belongs to another user's login, and what a member writes
    there goes to Session as that login."""
    if portal is None or not portal.mxid or portal.unbridged_at is not None:
        return False
    return portal.kind is not PortalKind.DIRECT


class LinkEffects:
    """Applies and takes back the effects of links; keeps :class:`LinkedIds` current."""

    def __init__(
        self,
        *,
        links: LinkRepo,
        portals: PortalRepo,
        ghosts: GhostManager,
        linked: LinkedIds,
        bot: IntentAPI,
        server_key_of: ServerKeyOf,
    ) -> None:
        self._links = links
        self._portals = portals
        self._ghosts = ghosts
        self._linked = linked
        self._bot = bot
        self._server_key_of = server_key_of

    async def load(self) -> None:
        """Read the links (at start) and learn their blinded ids on the bridged servers."""
        links = [r for r in await self._links.identities() if r.kind is IdentityKind.LINK]
        self._linked.load((r.session_id, r.mxid) for r in links)
        for record in links:
            await self._forms(record.session_id)

    async def on_linked(self, record: IdentityRecord) -> None:
        self._linked.add(record.session_id, record.mxid)
        forms = await self._forms(record.session_id)
        since = now_ms() - ACTIVE_DAYS * DAY_MS
        for portal_id in await self._links.portals_with_authors(sorted(forms), since):
            portal = await self._portals.get_by_id(portal_id)
            if _invites_to(portal):
                assert portal is not None and portal.mxid is not None
                await self._invite(portal.mxid, record.mxid)
        await self._rename(forms)

    async def on_unlinked(self, record: IdentityRecord) -> None:
        forms = await self._forms(record.session_id)
        self._linked.remove(record.session_id)
        await self._rename(forms)

    async def _forms(self, session_id: str) -> set[str]:
        """``session_id`` and its blinded ids on the servers of the community portals."""
        forms = {session_id}
        for portal in await self._portals.list_active(PortalKind.COMMUNITY):
            forms |= self._linked.blinded_ids(session_id, self._server_key_of(portal))
        return forms

    async def _invite(self, room_id: str, mxid: str) -> None:
        try:
            await self._bot.invite_user(RoomID(room_id), UserID(mxid))
            log.info("Invited %s to %s (a linked Session ID is active there)", mxid, room_id)
        except MatrixError as e:  # already a member, or the bot may not invite there
            log.info("Could not invite %s to %s: %s", mxid, room_id, e)

    async def _rename(self, forms: set[str]) -> None:
        for session_id in sorted(forms):
            try:
                await self._ghosts.refresh_moved(session_id)
            except MatrixError as e:
                log.warning("Could not rename the ghost of %s: %s", session_id[:10], e)
