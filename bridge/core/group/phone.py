"""A login's groups as its phone sees them: the account's UserGroups and read state
(docs/user-configs.md, docs/groups-v2.md §8).

* Every UserGroups entry the account joined elsewhere (not an invite only, not removed) that
  the login does not hold yet is adopted (:meth:`GroupMembers.adopt`); a removed entry ends
  the login's membership as a kick does.
* A group invite accepted on Matrix is written to UserGroups, so the phone shows it joined.
* A read receipt of a login's owner in a group portal marks the group read on the phone.

The user configs are the direct-chat side's; :mod:`bridge.app` binds them here as callables
(:class:`AccountGroups`), so this kind never imports that side.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.group.clients import GroupClients
from bridge.core.group.members import GroupMembers
from bridge.core.logins import LoginManager
from bridge.db.records import PortalKind
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.portals import PortalRepo
from bridge.ids import parse_group_id
from bridge.keyed_locks import KeyedLocks
from bridge.session.errors import SessionError
from bridge.session.groups.events import GroupRemovedEvent, RemovalReason
from bridge.session.userconfig.views import JoinedGroup

log = logging.getLogger("bridge.core.group.phone")

__all__ = ["AccountGroups", "PhoneGroups"]


@dataclass(frozen=True)
class AccountGroups:
    """The user-config calls this kind needs, bound by :mod:`bridge.app`."""

    groups_of: Callable[[str], list[JoinedGroup]]
    #: (session_id, group_id, name, secret_key, auth_data) -> whether UserGroups changed
    group_joined: Callable[[str, str, str | None, bytes | None, bytes | None], Awaitable[bool]]
    mark_read: Callable[[str, str, int], Awaitable[None]]


class PhoneGroups:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clients: GroupClients,
        members: GroupMembers,
        groups: GroupRepo,
        portals: PortalRepo,
        messages: MessageRepo,
        logins: LoginManager,
    ) -> None:
        self._clients = clients
        self._members = members
        self._groups = groups
        self._portals = portals
        self._messages = messages
        self._logins = logins
        self._account: AccountGroups | None = None
        self._locks = KeyedLocks()

    def bind(self, account: AccountGroups) -> None:
        self._account = account

    # --- UserGroups → the bridge ------------------------------------------------------------

    async def sync_login(self, session_id: str) -> None:
        """At a login's start: what its UserGroups holds already (a failure is logged: the
        next UserGroups change tries again)."""
        if self._account is None:
            return
        try:
            await self.on_groups_changed(session_id, self._account.groups_of(session_id))
        except Exception:
            log.exception("The UserGroups of %s were not followed at start", session_id[:10])

    async def on_groups_changed(self, session_id: str, entries: list[JoinedGroup]) -> None:
        if session_id == self._clients.bot_session_id():
            return
        async with self._locks.of(session_id):
            for entry in entries:
                try:
                    await self._follow(session_id, entry)
                except (SessionError, ValueError) as e:
                    log.info("UserGroups entry %s not followed: %s", entry.group_id[:12], e)

    async def _follow(self, session_id: str, entry: JoinedGroup) -> None:
        known = await self._groups.membership(session_id, entry.group_id)
        if entry.removed:
            if known is not None and known.accepted and not known.removed:
                await self._groups.save_membership(dataclasses.replace(known, removed=True))
                await self._clients.resume(session_id)  # stops polling the group
                event = GroupRemovedEvent(
                    parse_group_id(entry.group_id), RemovalReason.NOT_IN_MEMBERS
                )
                await self._members.on_removed(session_id, event)
            return
        if entry.invited or not (entry.auth_data or entry.secret_key):
            return
        # A membership ended (kicked, declined) is not brought back by a stale entry.
        if known is not None and (known.accepted or known.removed):
            return
        log.info("Adopting group %s joined elsewhere by %s", entry.group_id[:12], session_id[:10])
        await self._members.adopt(
            session_id,
            entry.group_id,
            entry.name or "",
            auth_data=entry.auth_data or b"",
            seed=entry.secret_key,
        )

    # --- the bridge → UserGroups ------------------------------------------------------------

    async def on_accepted(self, session_id: str, group_id: str) -> None:
        """A login accepted ``group_id``'s invite on Matrix: the phone shows it joined."""
        known = await self._groups.membership(session_id, group_id)
        if self._account is None or known is None:
            return
        try:
            await self._account.group_joined(
                session_id, group_id, known.name or None, known.seed, known.auth_data or None
            )
        except SessionError as e:  # the next config poll pushes it
            log.info("UserGroups of %s not pushed yet: %s", session_id[:10], e)

    # --- read state -------------------------------------------------------------------------

    async def on_ephemeral(self, raw: Mapping[str, Any]) -> None:
        """``m.receipt`` of a login's owner in a group portal: the group is read on the phone."""
        room_id, content = raw.get("room_id"), raw.get("content")
        if raw.get("type") != "m.receipt" or not isinstance(room_id, str):
            return
        if not isinstance(content, Mapping) or self._account is None:
            return
        portal = await self._portals.get_by_mxid(room_id)
        if portal is None or portal.kind != PortalKind.GROUP or portal.unbridged_at is not None:
            return
        latest: dict[str, int] = {}
        for event_id, receipts in content.items():
            read = receipts.get("m.read") if isinstance(receipts, Mapping) else None
            if not isinstance(read, Mapping):
                continue
            record = await self._messages.get_by_mxid(str(event_id))
            if record is None:
                continue
            for reader in read:
                for login in await self._logins.logins_of(str(reader)):
                    latest[login.session_id] = max(
                        latest.get(login.session_id, 0), record.timestamp
                    )
        for session_id, at_ms in latest.items():
            known = await self._groups.membership(session_id, portal.session_key)
            if known is not None and known.accepted and not known.removed:
                try:
                    await self._account.mark_read(session_id, portal.session_key, at_ms)
                except SessionError as e:
                    log.info("Read state of %s not pushed yet: %s", session_id[:10], e)
