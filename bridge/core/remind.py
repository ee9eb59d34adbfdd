"""``remind <Session ID>`` (docs/migration.md §5): a portal admin has the bot's Session identity
send one member a direct reminder, at most one per member per day (kv), every refusal told."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bridge.core.moved import MigrationStatus
from bridge.core.reminders import DAY_MS, ReminderSettings, days_until, text_for
from bridge.db.records import PortalRecord, now_ms
from bridge.db.repos.kv import KVRepo
from bridge.ids import InvalidId, SessionID

log = logging.getLogger("bridge.core.remind")

SendDirect = Callable[[str, str], Awaitable[None]]
"""Sends a text from the bot's Session identity to a Session ID (a 1:1 message)."""


class MemberReminder:
    def __init__(
        self,
        *,
        settings: ReminderSettings,
        kv: KVRepo,
        status: MigrationStatus,
        is_linked: Callable[[str], bool],
        send: SendDirect,
        bot_session_id: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._settings = settings
        self._kv = kv
        self._status = status
        self._is_linked = is_linked
        self._send = send
        self._bot = bot_session_id
        self._clock = clock

    async def remind(self, portal: PortalRecord, text: str) -> str:
        """Send the reminder to ``text`` (a Session ID); the answer for the admin."""
        try:
            sid = SessionID.parse(text.strip()).value
        except InvalidId:
            return (
                "That is not a Session ID (66 characters starting with `05`). A blinded "
                "community id (`15…`) cannot get a direct message from the bot."
            )
        if sid == self._bot:
            return "That is the bot's own Session ID."
        if self._is_linked(sid):
            return "That person has already moved: their Session ID is linked to Matrix."
        now = self._clock()
        key = f"remind:{sid}:{now // DAY_MS}"
        if await self._kv.get(key) is not None:
            return "That person already got a reminder today; try again tomorrow."
        body = await self._text(portal, now)
        await self._kv.set(key, str(now))
        try:
            await self._send(sid, body)
        except Exception as e:
            await self._kv.delete(key)
            log.warning("Direct reminder to %s failed: %s", sid[:10], e)
            return f"Could not send the reminder from the bot's Session identity: {e}"
        return f"Sent a reminder to `{sid[:10]}…` from the bot's Session identity."

    async def _text(self, portal: PortalRecord, now: int) -> str:
        left = days_until(self._settings.deadline, now)
        report = await self._status.who(portal)
        text = text_for(report, portal, left if left is not None else 0, self._settings.howto)
        if left is None or left < 0:
            return (
                f"Hello! The chat {portal.name or ''} continues on Matrix: {text.link}\n"
                f"{self._settings.howto}"
            )
        return text.render(self._settings.template_session)
