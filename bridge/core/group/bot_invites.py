"""The bridge bot invited to a Session group by a group admin (README, Group portals).

What happens is the operator's choice (``groups.bot_invites``): ``accept`` every invite,
``allowlist`` (accept those of ``groups.allowed_inviters``, refuse the others), ``approve``
(the default: the invite stays pending until a bridge admin runs ``groups accept <id>`` or
``groups decline <id>``), or ``refuse``. Nothing is created on the homeserver before an invite
is accepted. A pending invite is the bot's stored, unaccepted membership, so it survives
restarts. The inviter is told on Session (1:1 from the bot) what became of the invite and why.

An accepted invite: the bot joins on Session (the invite response), and the portal room is
created with the group's name, public or invite-only per ``groups.public_portals``, with the
alias ``#<prefix>group-<group id>:<domain>``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID

from bridge.config import GroupsConfig
from bridge.core.group.clients import GroupClients
from bridge.core.group.portals import GroupPortals
from bridge.db.records import PortalRecord
from bridge.db.repos.groups import GroupMembershipRecord, GroupRepo
from bridge.session.client import SessionClient
from bridge.session.errors import SessionError
from bridge.session.groups.events import GroupInviteEvent

log = logging.getLogger("bridge.core.group.bot_invites")

__all__ = ["BotInvites", "GroupInviteError", "group_alias_localpart"]


class GroupInviteError(Exception):
    """An invite cannot be accepted or declined; the message is meant for the admin."""


def group_alias_localpart(prefix: str, group_id: str) -> str:
    """The alias localpart of a group portal (within the registration's alias namespace)."""
    return f"{prefix}group-{group_id}"


class BotInvites:
    """Decides on the bot's group invites (see the module docstring)."""

    def __init__(
        self,
        *,
        clients: GroupClients,
        portals: GroupPortals,
        groups: GroupRepo,
        session_client: Callable[[str], SessionClient | None],
        bot: IntentAPI,
        config: GroupsConfig,
        alias_prefix: str,
    ) -> None:
        self._clients = clients
        self._portals = portals
        self._groups = groups
        self._session_client = session_client
        self._bot = bot
        self._config = config  # read at each invite: a changed config counts at once
        self._alias_prefix = alias_prefix

    async def on_invite(self, event: GroupInviteEvent) -> None:
        """A verified invite of the bot: accepted, kept pending or refused per the policy."""
        group, inviter = event.group.value, event.inviter.value
        policy = self._config.bot_invites
        allowed = {sid.lower() for sid in self._config.allowed_inviters}
        if policy == "accept" or (policy == "allowlist" and inviter.lower() in allowed):
            await self.accept(group)
            return
        if policy == "approve":
            log.info("The bot's invite to group %s is pending a bridge admin", group[:12])
            await self._tell(
                inviter,
                "Thanks for the invite. A bridge admin has to approve it before this group is "
                "bridged to Matrix; you will hear from me when they decide.",
            )
            return
        why = (
            "this bridge accepts group invites only from the people its operator listed"
            if policy == "allowlist"
            else "this bridge does not accept group invites (its operator's setting)"
        )
        await self._decline(group, f"I did not join the group: {why}.")

    async def pending(self) -> list[GroupMembershipRecord]:
        """The bot's invites that wait for a decision, oldest first."""
        found = await self._groups.memberships(self._clients.bot_session_id())
        waiting = [m for m in found if not m.accepted and not m.removed and m.auth_data]
        return sorted(waiting, key=lambda m: m.invite_timestamp)

    async def find(self, prefix: str) -> GroupMembershipRecord:
        """The pending invite whose group id starts with ``prefix`` (one, or an error)."""
        wanted = prefix.strip().lower()
        matches = [m for m in await self.pending() if m.group_id.startswith(wanted)]
        if not matches:
            raise GroupInviteError(
                f"No pending group invite of the bot matches `{prefix}`; "
                "`groups pending` lists them."
            )
        if len(matches) > 1:
            raise GroupInviteError(f"`{prefix}` matches several invites: give more of the id.")
        return matches[0]

    async def accept(self, group_id: str, invitees: tuple[str, ...] = ()) -> PortalRecord:
        """Join the group as the bot and create its portal room, ``invitees`` invited (the
        bridge admin who accepted)."""
        client = self._clients.client(self._clients.bot_session_id())
        if client is None:
            raise GroupInviteError("The bot's Session account is not running yet; try again.")
        membership = await client.membership(group_id)
        name = membership.name if membership is not None else ""
        # The room first: the history the group's swarm holds arrives once we poll it.
        portal, created = await self._portals.ensure(group_id, name, invitees, public=True)
        if created:
            await self._add_alias(portal, group_id)
        try:
            await client.accept(group_id)
        except (SessionError, TimeoutError) as e:
            raise GroupInviteError(f"Joining the group on Session failed: {e}") from e
        info = client.info(group_id)
        if info is not None:
            portal = await self._portals.follow_info(portal, info)
        if membership is not None and membership.inviter:
            await self._tell(membership.inviter, "I joined the group: it is now on Matrix.")
        return portal

    async def decline(self, group_id: str) -> None:
        """Refuse a pending invite (a bridge admin's decision)."""
        await self._decline(group_id, "A bridge admin declined the invite to bridge this group.")

    async def _decline(self, group_id: str, text: str) -> None:
        membership = await self._groups.membership(self._clients.bot_session_id(), group_id)
        if membership is None:
            return
        await self._groups.save_membership(dataclasses.replace(membership, removed=True))
        log.info("The bot declined group %s", group_id[:12])
        if membership.inviter:
            await self._tell(membership.inviter, text)

    async def _add_alias(self, portal: PortalRecord, group_id: str) -> None:
        localpart = group_alias_localpart(self._alias_prefix, group_id)
        try:
            await self._bot.add_room_alias(RoomID(str(portal.mxid)), localpart, override=True)
        except MatrixRequestError as e:
            log.warning("Could not add the alias of group portal %s: %s", portal.mxid, e)

    async def _tell(self, inviter: str, text: str) -> None:
        """A 1:1 message from the bot to the inviter on Session (best effort)."""
        dm = self._session_client(self._clients.bot_session_id())
        if dm is None:
            return
        try:
            await dm.send_text(inviter, text)
        except SessionError as e:
            log.info("Could not tell %s about their group invite: %s", inviter[:10], e)
