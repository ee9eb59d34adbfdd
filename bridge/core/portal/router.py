"""Routes one stored Matrix event to what handles it: bot invites, commands, portals.

Every state event first updates the state store that mautrix's intents read (membership,
display names, power levels). mautrix's own transaction handler does that, but the bridge
stores transactions durably and routes them here instead (docs/matrix-side.md §2.10), so without
this
the store keeps what the bridge itself did (an invite without a name) or first fetched, and a
member's display name would never change until a restart.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from mautrix.types import (
    Event,
    EventType,
    GenericEvent,
    Membership,
    MemberStateEventContent,
    MessageEvent,
    MessageType,
    ReactionEvent,
    RedactionEvent,
    SerializerError,
    StateEvent,
)

from bridge.matrix.user_ids import is_user_id

log = logging.getLogger("bridge.core.portal.router")

InviteHandler = Callable[[StateEvent], Awaitable[None]]
BotLeftHandler = Callable[[StateEvent], Awaitable[None]]
MessageHandler = Callable[[MessageEvent], Awaitable[None]]
# mautrix's ``Event`` is a NewType over a union, so its members do not convert to it; this is
# the union of what reaches portal handlers.
RoomEvent = MessageEvent | StateEvent | ReactionEvent | RedactionEvent | GenericEvent
EventHandler = Callable[[RoomEvent], Awaitable[None]]
StateHandler = Callable[[StateEvent], Awaitable[None]]


async def _ignore(event: RoomEvent) -> None:
    return None


async def _ignore_state(event: StateEvent) -> None:
    return None


def parse_event(raw: dict[str, Any]) -> Event | None:
    """Deserialize a client-format event; None (and one log line) if it is malformed."""
    raw = dict(raw)
    if "prev_content" in raw and "unsigned" not in raw:
        raw["unsigned"] = {"prev_content": raw["prev_content"]}
    try:
        event: Event = Event.deserialize(raw)
    except (SerializerError, KeyError, TypeError, ValueError) as e:
        log.warning("Dropping malformed Matrix event %s: %s", raw.get("event_id"), e)
        return None
    cls = EventType.Class.STATE if raw.get("state_key") is not None else EventType.Class.MESSAGE
    event.type = event.type.with_class(cls)
    return event


class MatrixEventRouter:
    """Decides, for each event, which handler (if any) sees it."""

    def __init__(
        self,
        *,
        bot_mxid: str,
        ghost_regex: str,
        on_bot_invite: InviteHandler,
        on_bot_left: BotLeftHandler,
        on_message: MessageHandler,
        on_room_event: EventHandler = _ignore,
        on_state: StateHandler = _ignore_state,
    ) -> None:
        self._bot_mxid = bot_mxid
        self._ghost = re.compile(ghost_regex)
        self._on_bot_invite = on_bot_invite
        self._on_bot_left = on_bot_left
        self._on_message = on_message
        self._on_room_event = on_room_event
        self._on_state = on_state

    def is_bridge_user(self, mxid: str) -> bool:
        """The bot or one of our ghosts: their events are echoes of our own sends."""
        return mxid == self._bot_mxid or bool(self._ghost.match(mxid))

    async def handle(self, raw: dict[str, Any]) -> None:
        sender = raw.get("sender")
        if not is_user_id(sender):
            # Only a homeserver holding our hs_token can send this, yet nothing downstream
            # (names, relay, permissions, notices) may see a sender that is not a user.
            shown = repr(sender)[:80] if isinstance(sender, str) else type(sender).__name__
            event_id = str(raw.get("event_id"))[:80]
            log.warning("Dropping Matrix event %s: sender %s is not a user id", event_id, shown)
            return
        event = parse_event(raw)
        if event is None:
            return
        if isinstance(event, StateEvent):
            await self._remember_state(event)
        if isinstance(event, StateEvent) and event.type == EventType.ROOM_MEMBER:
            await self._handle_member(event)
            return
        if self.is_bridge_user(str(getattr(event, "sender", ""))):
            return
        if isinstance(event, MessageEvent) and event.content.msgtype in (
            MessageType.TEXT,
            MessageType.EMOTE,
        ):
            await self._on_message(event)
        else:
            # Media, reactions, redactions, edits of other kinds, encryption: the portals' part.
            await self._on_room_event(cast(RoomEvent, event))

    async def _remember_state(self, event: StateEvent) -> None:
        """Update the state store, as mautrix would for every state event (also ours)."""
        try:
            await self._on_state(event)
        except Exception:
            # A stale store only makes a name or a membership lag: never drop the event for it.
            log.exception("Could not update the state store from %s", event.event_id)

    async def _handle_member(self, event: StateEvent) -> None:
        if self.is_bridge_user(str(event.sender)):
            return
        if event.state_key != self._bot_mxid:
            # Someone invites a ghost (a direct chat started from Matrix), leaves a portal...
            await self._on_room_event(event)
            return
        if not isinstance(event.content, MemberStateEventContent):
            return
        membership = event.content.membership
        if membership == Membership.INVITE:
            await self._on_bot_invite(event)
        elif membership in (Membership.LEAVE, Membership.BAN):
            await self._on_bot_left(event)
