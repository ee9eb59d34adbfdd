"""Legacy (pre-2025, ``05…``) Session groups are not bridged (docs/session-protocol.md §2.9):
an invite to one is told once to whom it concerns, nothing else happens.

The invited login's owner is told in their management room; an invite to the bridge bot's
own account is told to the bridge admins. :mod:`bridge.app` wires
:meth:`LegacyGroupNotices.on_invite` to :class:`~bridge.core.direct.inbound.DirectInbound`,
which receives the invites (1:1 messages).
"""

from __future__ import annotations

import logging

from mautrix.appservice import IntentAPI

from bridge.core.logins import LoginManager
from bridge.db.repos.users import UserRepo
from bridge.matrix.send import derived_txn_id, send_notice
from bridge.session.messages import LegacyGroupInvite

log = logging.getLogger("bridge.core.direct.legacy_groups")

__all__ = ["LegacyGroupNotices"]


class LegacyGroupNotices:
    """Tells of legacy group invites (see the module docstring)."""

    def __init__(
        self,
        *,
        bot: IntentAPI,
        logins: LoginManager,
        bot_session_id: str,
        admins: list[str],
        users: UserRepo,
    ) -> None:
        self._bot = bot
        self._logins = logins
        self._bot_session_id = bot_session_id
        self._admins = admins
        self._users = users

    def _told(self, session_id: str) -> list[str]:
        if session_id == self._bot_session_id:
            return list(self._admins)
        return [
            str(login.record.mxid)
            for login in self._logins.cached_logins()
            if login.session_id == session_id
        ]

    async def on_invite(
        self, session_id: str, inviter: str, invite: LegacyGroupInvite, message_hash: str
    ) -> None:
        """``inviter`` added ``session_id`` to a legacy group (message ``message_hash``)."""
        whose = (
            "The bridge's Session account"
            if session_id == self._bot_session_id
            else (f"Your Session account {session_id[:10]}…")
        )
        name = invite.name or invite.group_public_key[:12] or "unnamed"
        text = (
            f"{whose} was added by {inviter} to the legacy Session group **{name}**. "
            "Legacy groups are gone from the Session apps and are not bridged; ask its members "
            "to make a new group."
        )
        for mxid in self._told(session_id):
            user = await self._users.get_user(mxid)  # read now: set a moment ago, perhaps
            room = user.management_room if user is not None else None
            if room is None:
                log.info("%s has no management room to be told of a legacy group", mxid)
                continue
            txn = derived_txn_id("legacy-group", f"{message_hash}:{mxid}")
            await send_notice(self._bot, room, text, txn_id=txn)
