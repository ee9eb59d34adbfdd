"""Who runs a Session group for a Matrix room admin: the *acting identity* of a group portal
(README, Running a Session group from Matrix; docs/groups-v2.md §7).

Session group changes are signed with the group's key, which only group admins hold (the
seed, stored with the membership: ``bridge/session/groups/member.py`` keeps it on a promotion).
The identity the bridge acts with for a Matrix user in a portal is, in this order:

1. one of that user's own logins holding the group's seed;
2. the login of another Matrix user joined to the portal, holding the seed (its Session
   account is then named as the author of the change on Session);
3. the bridge's own Session identity (the bot), when it holds the seed (a group admin
   promoted it, or it created the group).

A :class:`~bridge.session.groups.admin.GroupAdmin` is built afresh for each change from that
seed and the identity's 1:1 client: it reads the group back before every change (§1.13), so
nothing is cached here that could go stale. Errors of the storage network are sorted as the
outbox sorts them (:func:`bridge.core.group.actors.call_group`): a refusal becomes
:class:`AdminRefused`, an outage stays a :class:`TemporaryFailure` (tried again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mautrix.appservice import IntentAPI
from mautrix.types import RoomID

from bridge.core.group.actors import call_group
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.logins import LoginManager
from bridge.core.portal.events import Refused
from bridge.core.portal.outbox import PermanentFailure
from bridge.core.portal.rooms import PortalRooms
from bridge.db.records import PortalRecord
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.group_state import GroupState
from bridge.session.groups.member import GroupsClient
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.core.group.admin_acting")

__all__ = ["Acting", "ActingAdmins", "AdminRefused"]

T = TypeVar("T")
#: How long a change waits for the bridge's own clients to read a new group key.
KEYS_WAIT_S = 10.0

NOT_ALLOWED = "You cannot {what}: you are not allowed to use the bridge (ask the bridge's admin)."
NOT_ROOM_ADMIN = (
    "Only an admin of this room can {what}: it would change the Session group for everyone."
)
NOT_GROUP_ADMIN = (
    "The bridge cannot {what} from here: neither your Session login nor another login "
    "in this room nor the bridge's own Session account is an admin of this group. A group "
    "admin on Session can promote your login; then you can run the group from this room."
)


class AdminRefused(Refused):
    """A group change from Matrix was not made; the text says why (for the room)."""


@dataclass(frozen=True)
class Acting:
    """The identity a change is made with, and its admin of the group."""

    session_id: str
    admin: GroupAdmin


class ActingAdmins:
    """Finds the acting identity of a portal and builds its group admin (module docstring)."""

    def __init__(
        self,
        *,
        clients: GroupClients,
        logins: LoginManager,
        rooms: PortalRooms,
        bot: IntentAPI,
        snode: SnodeClient,
        session_client: SessionClientOf,
        may_use: Callable[[str], bool] = lambda _mxid: True,
    ) -> None:
        self._clients = clients
        self._may_use = may_use  # any permission level (README, Permissions)
        self._logins = logins
        self._rooms = rooms
        self._bot = bot
        self._snode = snode
        self._session_client = session_client

    def running(self) -> list[str]:
        """The Session ids whose group clients run."""
        return self._clients.running()

    def client(self, session_id: str) -> GroupsClient | None:
        """The running group client of ``session_id``."""
        return self._clients.client(session_id)

    def profile_name(self, session_id: str) -> str:
        """The Session profile name of one of our identities ("" if it has none)."""
        dm = self._session_client(session_id)
        profile = None if dm is None else dm.profile
        return (profile.display_name if profile is not None else None) or ""

    async def seed_of(self, session_id: str, group: str) -> bytes | None:
        """The group seed ``session_id`` holds (a group admin), if its client runs."""
        client = self._clients.client(session_id)
        membership = None if client is None else await client.membership(group)
        if membership is None or membership.removed:
            return None
        return membership.seed

    async def catch_up(self, group: str, generation: int | None) -> None:
        """After a rekey: the bridge's clients of ``group`` read its keys up to
        ``generation`` (within :data:`KEYS_WAIT_S`), so that what they send next is sealed
        with the new key, which a removed member lacks (docs/groups-v2.md §3.4, §7.5)."""
        if generation is None:
            return
        behind = []
        for session_id in self._clients.running():
            client = self._clients.client(session_id)
            state = None if client is None else client.poller.state(group)
            if client is None or state is None:
                continue  # not polling the group (in memory: no query per identity)
            membership = await client.membership(group)
            if membership is not None and not membership.removed:
                behind.append((client, state))
        deadline = time.monotonic() + KEYS_WAIT_S
        while behind and time.monotonic() < deadline:
            behind = [
                (c, s) for c, s in behind if (s.keyring.current_generation or 0) < generation
            ]
            for client, _ in behind:
                client.poll_now()
            if behind:
                await asyncio.sleep(0.05)
        if behind:
            log.warning("%d client(s) of group %s still lack its new key", len(behind), group[:12])

    async def is_room_admin(self, portal: PortalRecord, mxid: str) -> bool:
        """Whether ``mxid`` may change the portal room's power levels."""
        return await self._rooms.is_room_admin(str(portal.mxid), mxid)

    async def candidates(self, portal: PortalRecord, mxid: str | None) -> list[str]:
        """The identities that may act for ``mxid``, in the order of the module docstring."""
        own = [] if mxid is None else [x.session_id for x in await self._logins.logins_of(mxid)]
        joined = {str(m) for m in await self._bot.get_joined_members(RoomID(str(portal.mxid)))}
        others = [
            login.session_id
            for login in sorted(self._logins.cached_logins(), key=lambda x: x.record.id)
            if login.record.mxid in joined and login.record.mxid != mxid
        ]
        return [*own, *others, self._clients.bot_session_id()]

    async def find(self, portal: PortalRecord, mxid: str | None) -> Acting | None:
        """The acting identity for ``mxid`` (None: any admin identity of the portal)."""
        group = portal.session_key
        for session_id in await self.candidates(portal, mxid):
            seed = await self.seed_of(session_id, group)
            if seed is not None:
                admin = self.build(session_id, seed)
                if admin is not None:
                    return Acting(session_id, admin)
        return None

    def build(self, session_id: str, seed: bytes) -> GroupAdmin | None:
        """A group admin for ``session_id`` (whose group client runs) with ``seed``."""
        client = self._clients.client(session_id)
        if client is None:
            return None
        dm = self._session_client(session_id)
        files = dm.files if dm is not None else None
        return GroupAdmin(self._snode, client.identity, seed, dm=dm, files=files)

    def view(self, group: str) -> GroupState | None:
        """The group as the bridge's identities last read it (Info, Members), if any does."""
        for session_id in self._clients.running():
            client = self._clients.client(session_id)
            state = None if client is None else client.poller.state(group)
            if state is not None and state.ready:
                return state
        return None

    async def run(
        self,
        portal: PortalRecord,
        mxid: str,
        what: str,
        work: Callable[[GroupAdmin], Awaitable[T]],
    ) -> tuple[Acting, T]:
        """Do ``work`` as the acting identity of ``mxid``, a room admin; else
        :class:`AdminRefused` saying why (``what``: "rename the group", ...)."""
        if not self._may_use(mxid):
            raise AdminRefused(NOT_ALLOWED.format(what=what))
        if not await self.is_room_admin(portal, mxid):
            raise AdminRefused(NOT_ROOM_ADMIN.format(what=what))
        acting = await self.find(portal, mxid)
        if acting is None:
            raise AdminRefused(NOT_GROUP_ADMIN.format(what=what))
        return acting, await self.call(acting, what, work)

    @staticmethod
    async def call(acting: Acting, what: str, work: Callable[[GroupAdmin], Awaitable[T]]) -> T:
        """``work`` with the storage network's refusals as :class:`AdminRefused`."""
        try:
            return await call_group(work(acting.admin))
        except PermanentFailure as e:
            log.info("Could not %s as %s: %s", what, acting.session_id[:10], e)
            raise AdminRefused(f"Could not {what}: {e}.") from e
