"""What a group admin does when members answer (docs/groups-v2.md §7.3 4, §7.6): an approved
invite response clears the member's invite state (their name refreshed from its profile), and a
member who left is removed with a rekey (without the MemberChange, §7.5 1).

The bridge does it when one of its identities holds the group's seed; every identity in the
group sees the same message, so only the first seed holder of the bridge's running identities
(by Session id) acts. Both are idempotent: a message delivered again after a crash finds the
member already answered or gone.
"""

from __future__ import annotations

import logging

from bridge.core.group.admin_acting import ActingAdmins
from bridge.session.errors import SessionError
from bridge.session.groups.admin import GroupAdmin
from bridge.session.groups.events import GroupMessageEvent
from bridge.session.messages import GroupInviteResponse, GroupMemberLeft

log = logging.getLogger("bridge.core.group.admin_duties")

__all__ = ["AdminDuties"]


class AdminDuties:
    """Invite responses and departures, answered as a group admin (module docstring)."""

    def __init__(self, acting: ActingAdmins) -> None:
        self._acting = acting

    async def on_message(self, session_id: str, event: GroupMessageEvent) -> None:
        """A group message seen by ``session_id`` (one of ours)."""
        content = event.content
        if not isinstance(content, GroupInviteResponse | GroupMemberLeft):
            return
        if isinstance(content, GroupInviteResponse) and not content.is_approved:
            return
        admin = await self._admin(session_id, event.group.value)
        if admin is None:
            return
        try:
            await admin.sync()
            member = admin.members.get(event.sender)
            if member is None or member.removal is not None:
                return
            if isinstance(content, GroupInviteResponse) and member.invite is not None:
                await admin.handle_invite_response(event.sender, content)
            elif isinstance(content, GroupMemberLeft):
                await admin.remove([event.sender], notify=False)
        except SessionError as e:  # the next admin client to see it, or an app, does it
            log.info("Group %s: answering %s failed: %s", event.group.value[:12], event.hash, e)

    async def _admin(self, session_id: str, group: str) -> GroupAdmin | None:
        """The admin of ``group`` if ``session_id`` is the first of ours holding its seed."""
        for candidate in sorted(self._acting.running()):
            client = self._acting.client(candidate)
            if client is None or client.poller.state(group) is None:
                continue  # not in the group (in memory: no query per identity)
            seed = await self._acting.seed_of(candidate, group)
            if seed is not None:
                return self._acting.build(session_id, seed) if candidate == session_id else None
        return None
