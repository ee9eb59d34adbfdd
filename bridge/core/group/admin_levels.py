"""Power levels in a group portal and group admins (docs/groups-v2.md §7.4).

* A room admin raising a ghost to the group admin level (:data:`ADMIN_LEVEL`, what group
  admins' ghosts have) promotes that Session member, through the acting identity
  (:mod:`bridge.core.group.admin_acting`). Session groups cannot demote an admin, so lowering
  an admin's ghost below that level is refused. A refused change is put back.
* A Matrix user whose login is a group admin (holds the seed) is made a room admin (the level
  that may change power levels), when they join the portal or when their login is promoted:
  running the group from Matrix needs both.
"""

from __future__ import annotations

import logging

from mautrix.errors import IntentError, MatrixRequestError
from mautrix.types import EventType, PowerLevelStateEventContent, RoomID, StateEvent, UserID

from bridge.core.ghosts import GhostManager
from bridge.core.group.admin_acting import ActingAdmins, AdminRefused
from bridge.core.group.members import ADMIN_LEVEL
from bridge.core.logins import LoginManager
from bridge.db.records import PortalRecord
from bridge.ids import SessionID
from bridge.matrix.room_levels import RoomLevels

log = logging.getLogger("bridge.core.group.admin_levels")

__all__ = ["GroupLevelsFromMatrix"]

NOT_A_SESSION_ADMIN = "Only Session accounts (IDs starting with 05) can be group admins."
NO_DEMOTION = (
    "Session groups cannot take admin rights away from a member: {who} stays a group admin "
    "(their power level was put back)."
)


class GroupLevelsFromMatrix:
    """Power levels ↔ group admins (see the module docstring)."""

    def __init__(
        self,
        *,
        acting: ActingAdmins,
        ghosts: GhostManager,
        logins: LoginManager,
        levels: RoomLevels,
    ) -> None:
        self._acting = acting
        self._ghosts = ghosts
        self._logins = logins
        self._levels = levels

    async def on_levels(self, portal: PortalRecord, event: StateEvent) -> bool:
        """A power-levels change by a Matrix user; True if it was one."""
        content = event.content
        if not isinstance(content, PowerLevelStateEventContent):
            return False
        prev = event.unsigned.prev_content if event.unsigned else None
        if not isinstance(prev, PowerLevelStateEventContent):
            return True  # nothing to compare with (the room's first levels)
        raised, lowered = self._crossings(prev, content)
        refusals: list[str] = []
        put_back: dict[str, int] = {}
        for mxid, sid in raised:
            if self._is_group_admin(portal.session_key, sid):
                continue  # an admin already (the bridge sets their level itself)
            try:
                await self._promote(portal, str(event.sender), SessionID.parse(sid))
            except (AdminRefused, ValueError) as e:
                refusals.append(str(e) if isinstance(e, AdminRefused) else NOT_A_SESSION_ADMIN)
                put_back[mxid] = prev.get_user_level(UserID(mxid))
        for mxid, sid in lowered:
            if not self._is_group_admin(portal.session_key, sid):
                continue  # a level the group never gave: nothing to keep
            refusals.append(NO_DEMOTION.format(who=mxid))
            put_back[mxid] = prev.get_user_level(UserID(mxid))
        if put_back:
            await self._put_back(portal, put_back)
        if refusals:
            raise AdminRefused(" ".join(dict.fromkeys(refusals)))
        return True

    def _is_group_admin(self, group: str, sid: str) -> bool:
        """Whether the group, as last read, lists ``sid`` as an admin."""
        view = self._acting.view(group)
        try:
            member = None if view is None else view.members.get(SessionID.parse(sid))
        except ValueError:
            return False
        return member is not None and member.admin

    async def _promote(self, portal: PortalRecord, sender: str, member: SessionID) -> None:
        await self._acting.run(
            portal, sender, "make someone a group admin", lambda a: a.promote(member)
        )

    def _crossings(
        self, prev: PowerLevelStateEventContent, new: PowerLevelStateEventContent
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Ghosts raised to the admin level, and ghosts lowered below it."""
        raised, lowered = [], []
        for mxid in sorted({str(m) for m in (*prev.users, *new.users)}):
            sid = self._ghosts.session_id_for(mxid)
            if sid is None:
                continue
            before = prev.get_user_level(UserID(mxid))
            after = new.get_user_level(UserID(mxid))
            if before < ADMIN_LEVEL <= after:
                raised.append((mxid, sid))
            elif after < ADMIN_LEVEL <= before:
                lowered.append((mxid, sid))
        return raised, lowered

    async def _put_back(self, portal: PortalRecord, levels_of: dict[str, int]) -> None:
        def put_back(levels: PowerLevelStateEventContent) -> bool:
            for mxid, level in levels_of.items():
                levels.set_user_level(UserID(mxid), level)
            return True

        try:
            await self._levels.change(RoomID(str(portal.mxid)), put_back)
        except (IntentError, MatrixRequestError):
            log.exception("Could not put back the power levels in %s", portal.mxid)

    # --- group admins' Matrix owners ----------------------------------------------------------

    async def make_room_admin(self, portal: PortalRecord, mxid: str) -> bool:
        """Raise ``mxid`` to the room's admin level if one of their logins holds the group's
        seed; True if they were raised."""
        group = portal.session_key
        logins = await self._logins.logins_of(mxid)
        if not any([await self._acting.seed_of(x.session_id, group) for x in logins]):
            return False

        def raise_to_admin(levels: PowerLevelStateEventContent) -> bool:
            needed = levels.get_event_level(EventType.ROOM_POWER_LEVELS)
            if levels.get_user_level(UserID(mxid)) >= needed:
                return False
            levels.set_user_level(UserID(mxid), needed)
            return True

        try:
            if not await self._levels.change(RoomID(str(portal.mxid)), raise_to_admin):
                return False
        except (IntentError, MatrixRequestError) as e:
            log.info("Could not make %s an admin of %s: %s", mxid, portal.mxid, e)
            return False
        log.info("%s, a group admin, is now an admin of %s", mxid, portal.mxid)
        return True
