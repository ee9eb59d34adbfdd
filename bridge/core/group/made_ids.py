"""A bridge-made identity joins a group (docs/migration.md §7).

The group's acting admin identity, one the bridge runs that holds the group seed (the bot or a
login, docs/groups-v2.md §7.2), invites it: the member is added to the group's Members and
keys, and the admin-signed invite is sent 1:1 as a Session app sends it. The made identity
runs no 1:1 client, so the bridge hands it the same kind of invite directly (verified by the
identity's group client like any received invite), accepts it (the group's keys are read, the
InviteResponse posted) and the admin clears the member's invite status. From then on its
group client polls the group like every identity the bridge runs, until the room denies made
identities again: then it leaves the group.
"""

from __future__ import annotations

import logging
import secrets

from bridge.core.group.actors import is_member
from bridge.core.group.clients import GroupClients, SessionClientOf
from bridge.core.made_ids import MadeIdentity
from bridge.ids import GroupID
from bridge.session.dm_events import DirectMessageEvent
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.member import GroupsClient
from bridge.session.groups.subaccount import make_member_auth_data
from bridge.session.keys import Identity
from bridge.session.messages import GroupInvite, GroupInviteResponse, Profile
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.core.group.made_ids")

NO_ADMIN = (
    "Your bridge-made Session identity cannot join this group: none of the bridge's Session "
    "accounts is an admin of it, and only an admin can invite. Your messages are relayed "
    "meanwhile. A group admin on Session can make the bridge's account an admin."
)


class MadeGroups:
    """Group membership of bridge-made identities."""

    def __init__(
        self, *, clients: GroupClients, snode: SnodeClient, session_client: SessionClientOf
    ) -> None:
        self._clients = clients
        self._snode = snode
        self._session_client = session_client

    async def start(self, made: MadeIdentity) -> GroupsClient:
        """The made identity's group client (started if it does not run)."""
        found = self._clients.client(made.session_id)
        return found if found is not None else await self._clients.start_identity(made.identity)

    async def stop(self, made: MadeIdentity) -> None:
        await self._clients.stop_identity(made.session_id)

    async def leave(self, made: MadeIdentity, group: str) -> bool:
        """``made`` leaves ``group`` as a Session app leaves (MemberLeftNotification and
        MemberLeft, docs/groups-v2.md §7.6; the group's admin then removes it): when the room
        denies made identities again. False when it was no member."""
        client = self._clients.client(made.session_id)
        if client is None or not await is_member(client, group):
            return False
        await client.leave(group)
        log.info("Bridge-made %s left group %s", made.session_id[:10], group[:12])
        return True

    async def is_member(self, made: MadeIdentity, group: str) -> bool:
        client = self._clients.client(made.session_id)
        return client is not None and await is_member(client, group)

    async def join(self, made: MadeIdentity, group: str, profile: Profile) -> str | None:
        """Make ``made`` a member of ``group``; None when it is, else why it is not."""
        client = await self.start(made)
        if await is_member(client, group):
            return None
        found = await self._admin_of(group, exclude=made.session_id)
        if found is None:
            return NO_ADMIN
        identity, seed = found
        admin = GroupAdmin(
            self._snode, identity, seed, dm=self._session_client(identity.session_id.value)
        )
        await admin.invite(made.identity.session_id, profile.display_name or "")
        await client.handle_dm_event(_invite(admin, made, seed))
        await client.accept(group)
        response = GroupInviteResponse(is_approved=True, profile=profile)
        await admin.handle_invite_response(made.identity.session_id, response)
        log.info("Bridge-made %s joined group %s", made.session_id[:10], group[:12])
        return None

    async def _admin_of(self, group: str, *, exclude: str) -> tuple[Identity, bytes] | None:
        """An identity the bridge runs that holds ``group``'s seed (the bot first)."""
        ids = self._clients.running()
        bot = self._clients.bot_session_id()
        ids.sort(key=lambda sid: sid != bot)
        for sid in ids:
            client = self._clients.client(sid)
            if sid == exclude or client is None:
                continue
            membership = await client.membership(group)
            if membership is not None and membership.seed and not membership.removed:
                return client.identity, membership.seed
        return None


def _invite(admin: GroupAdmin, made: MadeIdentity, seed: bytes) -> DirectMessageEvent:
    """The admin-signed invite of ``made``, as its 1:1 swarm would deliver it (§7.3)."""
    member = made.identity.session_id
    timestamp = admin.snode.sent_clock.next_ms()
    invite = GroupInvite(
        group_session_id=GroupID.from_key(admin.group.public).value,
        name=admin.info.name,
        member_auth_data=make_member_auth_data(seed, member),
        admin_signature=admin.sign(f"INVITE{member.value}{timestamp}"),
    )
    return DirectMessageEvent(
        sender=admin.identity.session_id,
        timestamp=timestamp,
        hash=f"bridge-made-invite-{secrets.token_hex(8)}",
        content=invite,
    )
