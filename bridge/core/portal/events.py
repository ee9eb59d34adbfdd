"""Matrix events in portal rooms: hand them to the handler of the portal's kind; a refused
event is reported to its sender through :class:`~bridge.core.portal.notices.FailureNotices`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from mautrix.appservice import IntentAPI
from mautrix.types import EventType, MessageEvent, ReactionEvent, RedactionEvent, StateEvent

from bridge.core.portal.encryption_policy import NOW_ENCRYPTED_NOTICE, EncryptionPolicy
from bridge.core.portal.notices import FailureNotices
from bridge.core.portal.outbox import OutboxSender
from bridge.core.portal.router import RoomEvent
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.reads import member_display_name
from bridge.matrix.send import derived_txn_id, send_notice

log = logging.getLogger("bridge.core.portal.events")


class Refused(Exception):
    """A Matrix event cannot be sent to Session; the text is for its sender."""


class NoLogin(Refused):
    """The sender has no Session login, and relay is off: their ``what`` ("message",
    "reaction") was not sent. What they can do about it depends on their permission level,
    which the bot's commands know: the text comes from a :data:`NoLoginText`."""

    def __init__(self, what: str) -> None:
        super().__init__(default_no_login_text("", what))
        self.what = what


# (sender mxid, what) → the text that tells the sender why, and what they can do instead.
NoLoginText = Callable[[str, str], str]


def default_no_login_text(mxid: str, what: str) -> str:
    if what == "direct chat":
        return "You need a Session login for direct chats: send `login` to the bridge bot."
    return (
        f"Your {what} was not sent to Session: you have no Session login and relay is off in "
        "this room."
    )


class PortalHandler(Protocol):
    """What one kind of portal (community, direct chat, group) does with Matrix events.

    Both methods raise :class:`Refused` to tell the sender why something was not bridged;
    work that goes to Session is queued in the outbox, not sent from here.
    """

    async def handle_message(
        self, portal: PortalRecord, event: MessageEvent, name: str
    ) -> None: ...

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None: ...


NonPortalHook = Callable[[RoomEvent], Awaitable[None]]
# Told of every m.room.member event of a real user in a portal (a profile change, say),
# before its kind's handler; its errors are logged, never stop the event.
MemberWatcher = Callable[[StateEvent], Awaitable[None]]
# Whether a Matrix user (mxid) has a permission level at all (README, Permissions).
MayUse = Callable[[str], bool]


async def _no_hook(event: RoomEvent) -> None:
    return None


def _what(event: RoomEvent) -> str | None:
    """What ``event`` would do on Session, as a refusal names it; None for what does not
    reach Session (membership, names...)."""
    if isinstance(event, MessageEvent):
        return "message"
    if isinstance(event, ReactionEvent):
        return "reaction"
    if isinstance(event, RedactionEvent):
        return "deletion"
    return None


class PortalEvents:
    """Routes Matrix events of portal rooms to their portal's handler."""

    def __init__(
        self,
        *,
        portals: PortalRepo,
        bot: IntentAPI,
        handlers: Mapping[PortalKind, PortalHandler],
        sender: OutboxSender,
        notices: FailureNotices,
        may_use: MayUse,
        outside_portals: NonPortalHook = _no_hook,
        no_login_text: NoLoginText = default_no_login_text,
    ) -> None:
        self._may_use = may_use
        self._portals = portals
        self._bot = bot
        self._handlers = dict(handlers)
        self._sender = sender
        self._notices = notices
        self._outside_portals = outside_portals
        self._no_login_text = no_login_text
        self.member_watchers: list[MemberWatcher] = []
        # Set by the app: encryption.allow/require in existing portals (README, Encryption).
        self.encryption: EncryptionPolicy | None = None

    async def _portal_of(self, room_id: str) -> PortalRecord | None:
        portal = await self._portals.get_by_mxid(room_id)
        return portal if portal is not None and portal.unbridged_at is None else None

    async def handle_message(self, event: MessageEvent) -> None:
        """A text or emote message that was not a command."""
        portal = await self._portal_of(str(event.room_id))
        if portal is None:
            await self._outside_portals(event)
            return
        if await self._not_allowed(portal, event) or await self._unencrypted(portal, event):
            return
        name = await member_display_name(self._bot, str(event.room_id), str(event.sender))
        await self._run(portal, event, self._handler(portal).handle_message(portal, event, name))

    async def handle_event(self, event: RoomEvent) -> None:
        """Any other event from a real user (media, reactions, redactions, state...)."""
        room_id = str(getattr(event, "room_id", ""))
        portal = await self._portal_of(room_id)
        if portal is None:
            await self._outside_portals(event)
            return
        if isinstance(event, StateEvent) and event.type == EventType.ROOM_ENCRYPTION:
            await self._now_encrypted(room_id, str(event.event_id))
            return
        if isinstance(event, StateEvent) and event.type == EventType.ROOM_MEMBER:
            await self._watch_member(event)
        if await self._not_allowed(portal, event) or await self._unencrypted(portal, event):
            return
        await self._run(portal, event, self._handler(portal).handle_event(portal, event))

    async def _now_encrypted(self, room_id: str, event_id: str) -> None:
        """A portal room became encrypted: with ``allow`` on, the bridge goes on there (the
        state store has learned it, so the bridge's sends are encrypted from now on); with it
        off, the bot says the room is no longer bridged."""
        if self.encryption is not None and self.encryption.allowed:
            self.encryption.became_encrypted(room_id)
            return
        txn = derived_txn_id("encrypted", event_id)
        await send_notice(self._bot, room_id, NOW_ENCRYPTED_NOTICE, txn_id=txn)

    async def _unencrypted(self, portal: PortalRecord, event: RoomEvent) -> bool:
        """Refuse (with a notice) an unencrypted message under ``encryption.require``."""
        if self.encryption is None:
            return False
        text = await self.encryption.refusal(str(portal.mxid), event)
        if text is None:
            return False
        sender = str(getattr(event, "sender", ""))
        await self._notices.tell_failure(str(portal.mxid), str(event.event_id), sender, text)
        return True

    async def _watch_member(self, event: StateEvent) -> None:
        for watcher in self.member_watchers:
            try:
                await watcher(event)
            except Exception:
                log.exception("A member watcher failed on %s", event.event_id)

    def _handler(self, portal: PortalRecord) -> PortalHandler:
        handler = self._handlers.get(portal.kind)
        if handler is None:
            return _Unsupported()
        return handler

    async def _not_allowed(self, portal: PortalRecord, event: RoomEvent) -> bool:
        """Refuse (with a notice) what a user without a permission level would do on
        Session: such a user cannot use the bridge at all (README, Permissions), not through
        relay, nor through a login they made while they still had a level."""
        sender, what = str(getattr(event, "sender", "")), _what(event)
        if what is None or self._may_use(sender):
            return False
        text = self._no_login_text(sender, what)
        await self._notices.tell_failure(str(portal.mxid), str(event.event_id), sender, text)
        return True

    async def _run(self, portal: PortalRecord, event: RoomEvent, work: Awaitable[None]) -> None:
        try:
            await work
        except Refused as e:
            sender = str(getattr(event, "sender", ""))
            text = self._no_login_text(sender, e.what) if isinstance(e, NoLogin) else str(e)
            await self._notices.tell_failure(str(portal.mxid), str(event.event_id), sender, text)
            return
        self._sender.wake()


class _Unsupported:
    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        raise Refused(f"{portal.kind} portals do not bridge messages yet.")

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        log.debug("%s in a %s portal not bridged", event.type, portal.kind)
