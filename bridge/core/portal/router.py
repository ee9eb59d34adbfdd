"""Routes one stored Matrix event to what handles it: bot invites, commands, (later) portals."""

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

log = logging.getLogger("bridge.core.portal.router")

InviteHandler = Callable[[StateEvent], Awaitable[None]]
BotLeftHandler = Callable[[StateEvent], Awaitable[None]]
MessageHandler = Callable[[MessageEvent], Awaitable[None]]
# mautrix's ``Event`` is a NewType over a union, so its members do not convert to it; this is
# the union of what reaches portal handlers.
RoomEvent = MessageEvent | StateEvent | ReactionEvent | RedactionEvent | GenericEvent
EventHandler = Callable[[RoomEvent], Awaitable[None]]


async def _ignore(event: RoomEvent) -> None:
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
    ) -> None:
        self._bot_mxid = bot_mxid
        self._ghost = re.compile(ghost_regex)
        self._on_bot_invite = on_bot_invite
        self._on_bot_left = on_bot_left
        self._on_message = on_message
        self._on_room_event = on_room_event

    def is_bridge_user(self, mxid: str) -> bool:
        """The bot or one of our ghosts: their events are echoes of our own sends."""
        return mxid == self._bot_mxid or bool(self._ghost.match(mxid))

    async def handle(self, raw: dict[str, Any]) -> None:
        event = parse_event(raw)
        if event is None:
            return
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
