"""The day after (docs/migration.md §6): ``finalize`` of one portal, and of all of them once
``migration.deadline`` plus ``migration.grace_days`` has passed.

A portal's last notices (both sides) are sent once (a kv key, claimed before); then the portal
is unbridged through its kind's own path (Session polling stops, ghosts leave, the room and
its history stay), tried again until it succeeds. The global finalize also deletes the stored
recovery phrases of the logins (``migration.delete_secrets_after``) and tells each bridge
admin what was removed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from bridge.core.reminders import SHARED_KINDS, Notify, SessionAnnouncer, room_link
from bridge.db.records import PortalKind, PortalRecord, now_ms
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.core.finalize")

GLOBAL_KEY = "finalized:all"
LAST_SESSION = (
    "This chat is no longer bridged to Matrix. The conversation continues on Matrix: {link}"
)
LAST_MATRIX = (
    "This room is no longer bridged to Session: nothing more arrives from Session, nothing "
    "more is sent there. The room and its history stay."
)

EndPortal = Callable[[PortalRecord], Awaitable[None]]
DeleteSecrets = Callable[[], Awaitable[list[str]]]


class Finalizer:
    def __init__(
        self,
        *,
        kv: KVRepo,
        portals: PortalRepo,
        announcers: Mapping[PortalKind, SessionAnnouncer],
        notify: Notify,
        end_portal: EndPortal,
        delete_secrets: DeleteSecrets | None,
        tell_admins: Callable[[str], Awaitable[None]],
        delete_made: DeleteSecrets | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._kv = kv
        self._portals = portals
        self._announcers = announcers
        self._notify = notify
        self._end_portal = end_portal
        self._delete_secrets = delete_secrets
        self._delete_made = delete_made  # bridge-made identities (docs/migration.md §7)
        self._tell_admins = tell_admins
        self._clock = clock

    async def portal(self, portal: PortalRecord) -> bool:
        """Finalize one portal; False if it is not bridged (any more). The last notices are
        sent once; ending the portal is tried again until it succeeds."""
        if portal.unbridged_at is not None:
            return False
        key = f"finalized:{portal.id}"
        if await self._kv.get(key) is None:
            await self._kv.set(key, str(self._clock()))
            await self._last_notices(portal)
        await self._end_portal(portal)
        log.info("Finalized portal %d (%s)", portal.id, portal.kind.value)
        return True

    async def _last_notices(self, portal: PortalRecord) -> None:
        announcer = self._announcers.get(portal.kind)
        if announcer is not None:
            try:
                await announcer.announce(portal, LAST_SESSION.format(link=room_link(portal)))
            except Exception as e:  # the portal still ends
                log.warning("No last Session notice in portal %d: %s", portal.id, e)
        if portal.mxid is not None:
            try:
                await self._notify(portal.mxid, LAST_MATRIX)
            except Exception as e:
                log.warning("No last Matrix notice in portal %d: %s", portal.id, e)

    async def everything(self) -> bool:
        """The global finalize, once; False if it was done before."""
        if await self._kv.get(GLOBAL_KEY) is not None:
            return False
        ended = 0
        for portal in await self._portals.list_active():
            if portal.kind in SHARED_KINDS:
                try:
                    ended += await self.portal(portal)
                except Exception:
                    log.exception("Finalizing portal %d failed; retried next tick", portal.id)
                    return False
        removed = await self._delete_secrets() if self._delete_secrets is not None else []
        made = await self._delete_made() if self._delete_made is not None else None
        await self._kv.set(GLOBAL_KEY, str(self._clock()))
        await self._tell_admins(report_text(ended, removed, made))
        return True


def report_text(ended: int, removed: list[str], made: list[str] | None = None) -> str:
    """The operator's report; ``made``: the bridge-made identities deleted (None: kept)."""
    lines = [
        "**The migration deadline and its grace period have passed.**",
        f"Portals finalized now: {ended} (no more Session polling; rooms and history stay).",
    ]
    if removed:
        lines.append(f"Stored recovery phrases deleted ({len(removed)}):")
        lines += [f"* {who}" for who in removed]
    else:
        lines.append("No stored recovery phrase was deleted.")
    if made:
        lines.append(f"Bridge-made Session identities deleted ({len(made)}):")
        lines += [f"* {who}" for who in made]
    elif made is not None:
        lines.append("No bridge-made Session identity was deleted.")
    return "\n".join(lines)
