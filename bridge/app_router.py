"""Wiring of the Matrix event router (docs/architecture.md §4.1), kept out of bridge/app.py:
the bot's commands and prompts first, then the portals."""

from __future__ import annotations

from mautrix.appservice import IntentAPI
from mautrix.types import MessageEvent

from bridge.commands.account import PHRASE_PROMPT, finish_phrase_login
from bridge.commands.bot import BotController, ManagementRooms
from bridge.commands.registry import CommandRegistry
from bridge.config import Config
from bridge.core.logins import LoginManager
from bridge.core.portal.events import PortalEvents
from bridge.core.portal.router import MatrixEventRouter, StateHandler
from bridge.core.prompts import Prompts

__all__ = ["build_router"]


def build_router(
    *,
    config: Config,
    bot: IntentAPI,
    rooms: ManagementRooms,
    registry: CommandRegistry,
    prompts: Prompts,
    logins: LoginManager,
    portal_events: PortalEvents,
    ghost_regex: str,
    on_state: StateHandler,
) -> MatrixEventRouter:
    """The router: a message is the bot's (a command, a prompt's answer) or a portal's."""
    controller = BotController(
        intent=bot,
        rooms=rooms,
        registry=registry,
        permissions=config.bridge.permissions,
        prefix=config.bridge.command_prefix,
        prompts=prompts,
        prompt_handlers={PHRASE_PROMPT: lambda evt, text: finish_phrase_login(logins, evt, text)},
    )

    async def on_message(event: MessageEvent) -> None:
        if not await controller.handle_message(event):
            await portal_events.handle_message(event)

    return MatrixEventRouter(
        bot_mxid=config.bot_mxid,
        ghost_regex=ghost_regex,
        on_bot_invite=controller.handle_invite,
        on_bot_left=controller.handle_bot_left,
        on_message=on_message,
        on_room_event=portal_events.handle_event,
        # Member names and memberships as the intents read them (router docstring).
        on_state=on_state,
    )
