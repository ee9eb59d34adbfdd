"""The bot's side of the conversation: invites, management rooms and commands."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import MemberStateEventContent, MessageEvent, RoomID, StateEvent

from bridge.commands.parse import CommandRejected, parse_command
from bridge.commands.permissions import NOT_ALLOWED, Level, level_for
from bridge.commands.registry import CommandEvent, CommandRegistry
from bridge.core.prompts import Prompts
from bridge.matrix.send import derived_txn_id, redact_once, send_notice
from bridge.session.mnemonic import looks_like_phrase

log = logging.getLogger("bridge.commands.bot")

# A handler for the message that answers a prompt (e.g. the phrase after `login`).
PromptHandler = Callable[[CommandEvent, str], Awaitable[None]]

# A recovery phrase has 13 or 25 words (docs/session-protocol.md §1.2); a message of that length is
# an answer to a prompt even if its first word is also a command name.
PHRASE_WORD_COUNTS = (13, 25)


class ManagementRooms(Protocol):
    async def get_management_room(self, mxid: str) -> str | None: ...

    async def set_management_room(self, mxid: str, room_id: str | None) -> None: ...


class BotController:
    """Answers invites to the bot and runs commands sent to it."""

    def __init__(
        self,
        *,
        intent: IntentAPI,
        rooms: ManagementRooms,
        registry: CommandRegistry,
        permissions: Mapping[str, str],
        prefix: str,
        prompts: Prompts | None = None,
        prompt_handlers: Mapping[str, PromptHandler] | None = None,
    ) -> None:
        self._prompts = prompts or Prompts()
        self._prompt_handlers = dict(prompt_handlers or {})
        self._intent = intent
        self._rooms = rooms
        self._registry = registry
        self._permissions = permissions
        self._prefix = prefix

    def level(self, mxid: str) -> Level:
        return level_for(mxid, self._permissions)

    async def handle_invite(self, event: StateEvent) -> None:
        """Join rooms permitted users invite us to; a DM becomes their management room."""
        inviter, room_id = str(event.sender), str(event.room_id)
        if self.level(inviter) == Level.NONE:
            log.info("Declining invite from %s to %s: no permission", inviter, room_id)
            await self._intent.leave_room(RoomID(room_id), reason=NOT_ALLOWED)
            return
        await self._intent.join_room(RoomID(room_id))
        content = event.content
        if not (isinstance(content, MemberStateEventContent) and content.is_direct):
            return
        await self._rooms.set_management_room(inviter, room_id)
        await send_notice(
            self._intent,
            room_id,
            "Hello! I am the Session bridge bot. This room is now your management room: "
            f"send commands here without `{self._prefix}`. Send `help` to see what I can do.",
            txn_id=derived_txn_id("welcome", str(event.event_id)),
        )

    async def handle_bot_left(self, event: StateEvent) -> None:
        """Forget a management room the bot was removed from."""
        for mxid in {str(event.sender), str(event.state_key)}:
            if await self._rooms.get_management_room(mxid) == str(event.room_id):
                await self._rooms.set_management_room(mxid, None)

    async def handle_message(self, event: MessageEvent) -> bool:
        """Run the command in ``event``; False if the message is not for the bot."""
        sender, room_id = str(event.sender), str(event.room_id)
        in_management = await self._rooms.get_management_room(sender) == room_id
        body = event.content.body or ""
        replies = 0

        async def reply(markdown: str) -> None:
            # Stable per (event, n): a re-delivered command reuses the ids (matrix-side §1.8).
            nonlocal replies
            replies += 1
            txn_id = derived_txn_id("reply", f"{event.event_id}:{replies}")
            await send_notice(self._intent, room_id, markdown, txn_id=txn_id)

        async def redact() -> bool:
            try:
                await redact_once(self._intent, room_id, str(event.event_id), "secret")
            except MatrixError as e:
                log.info("Could not redact %s in %s: %s", event.event_id, room_id, e)
                return False
            return True

        prompt = self._prompts.peek(sender, room_id)
        if prompt is not None and prompt.kind in self._prompt_handlers:
            if not self._is_command_word(body):
                self._prompts.take(sender, room_id)
                await self._answer_prompt(prompt.kind, event, body, reply, redact)
                return True
            # A command is never taken for the answer: it runs, and the prompt is closed.
            self._prompts.cancel(sender)
            await reply(
                f"I stopped waiting for your {prompt.kind}: that was a command, so I ran it."
            )
        if not self._starts_with_command(body) and looks_like_phrase(
            body, checksum=not in_management
        ):
            # A phrase pasted without `login` first (or into a portal, where it would reach
            # Session): never echo any of it, remove it at once. In the management room even
            # a mistyped one counts; elsewhere only a valid one, so that prose is not eaten.
            removed = await redact()
            await reply(
                "That looks like a Session recovery phrase"
                + (", so I removed it from this room." if removed else ".")
                + " To log in, send `login` first, then the phrase when I ask for it."
            )
            return True
        try:
            parsed = parse_command(body, self._prefix, in_management)
        except CommandRejected as e:
            await reply(str(e))
            return True
        if parsed is None:
            return False
        level = self.level(sender)
        if level == Level.NONE:
            await reply(NOT_ALLOWED)
            return True
        command_event = CommandEvent(
            sender=sender,
            room_id=room_id,
            name=parsed.name,
            args=parsed.args,
            raw_args=parsed.raw_args,
            level=level,
            in_management_room=in_management,
            reply=reply,
            event_id=str(event.event_id),
            redact_command=redact,
        )
        try:
            await self._registry.dispatch(command_event, self._prefix)
        except MatrixError:
            raise  # the homeserver is in trouble: let the inbox retry the event
        except Exception:
            log.exception("Command %s in %s failed", parsed.name, room_id)
            await reply(
                f"Sorry, `{parsed.name}` failed with an internal error; it has been logged."
            )
        return True

    def _starts_with_command(self, body: str) -> bool:
        """Whether ``body`` starts with the prefix or a known command name (``login <phrase>``
        is a command, and its own handler removes the phrase)."""
        words = body.strip().split()
        if not words:
            return False
        return words[0] == self._prefix or self._registry.get(words[0].lower()) is not None

    def _is_command_word(self, body: str) -> bool:
        """Whether ``body`` starts with the prefix or, bare, with a known command name."""
        text = body.strip()
        if text == self._prefix or text.startswith(self._prefix + " "):
            return True
        words = text.split()
        if not words or len(words) in PHRASE_WORD_COUNTS:
            return False
        return self._registry.get(words[0].lower()) is not None

    async def _answer_prompt(
        self,
        kind: str,
        event: MessageEvent,
        body: str,
        reply: Callable[[str], Awaitable[None]],
        redact: Callable[[], Awaitable[bool]],
    ) -> None:
        sender = str(event.sender)
        if body.strip().lower() == "cancel":
            await reply("Cancelled.")
            return
        answer = CommandEvent(
            sender=sender,
            room_id=str(event.room_id),
            name=kind,
            args=tuple(body.split()),
            raw_args=body.strip(),
            level=self.level(sender),
            in_management_room=True,
            reply=reply,
            event_id=str(event.event_id),
            redact_command=redact,
        )
        await self._prompt_handlers[kind](answer, body.strip())
