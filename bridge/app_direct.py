"""Wiring of direct chats: the Session accounts, their portals, both directions, ``pm``.

Part of the composition root, kept apart so that :mod:`bridge.app` stays short:
:class:`~bridge.app.BridgeApp` calls :func:`build_direct` while it builds the portals and
:meth:`DirectBridge.start` once the router exists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from mautrix.appservice import IntentAPI
from mautrix.types import StateEvent

from bridge.commands.direct import direct_commands
from bridge.commands.registry import Command
from bridge.config import Config
from bridge.core.direct import DirectChats
from bridge.core.direct_inbound import DirectInbound
from bridge.core.direct_outbound import DirectOutbound
from bridge.core.ghosts import GhostManager
from bridge.core.logins import Login, LoginManager
from bridge.core.portal_rooms import PortalRooms
from bridge.core.router import RoomEvent
from bridge.core.session_accounts import SessionAccounts, build_snode_client
from bridge.core.session_profiles import SessionProfiles
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.kv import KVRepo
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo
from bridge.matrix.reads import media_download
from bridge.session.files import FileServerClient

log = logging.getLogger("bridge.app_direct")


@dataclass
class DirectBridge:
    """The parts of direct chats that the app holds on to."""

    accounts: SessionAccounts
    chats: DirectChats
    inbound: DirectInbound
    outbound: DirectOutbound
    commands: list[Command]

    profiles: SessionProfiles

    async def start(
        self,
        bot_login: Login,
        bot_name: str,
        bot_avatar: str,
        logins: LoginManager,
        users: UserRepo,
    ) -> None:
        """Start the bot's Session client (with its name and picture) and every stored
        login's (with its owner's Matrix name)."""
        profile = await self.profiles.bot_profile(bot_name, bot_avatar)
        bot = await self.accounts.start_bot(bot_login.identity, profile)
        await self.profiles.refresh_bot_avatar(bot, bot_avatar)
        for record in await users.list_user_logins():
            login = await logins.login_by_id(record.id)
            if login is not None:
                await self.on_login(login)

    async def on_login(self, login: Login) -> None:
        owner = login.record.mxid
        name = await self.profiles.owner_name(owner) if owner is not None else None
        await self.accounts.start_login(login, name)

    async def on_logout(self, login: Login) -> None:
        await self.accounts.stop_login(login)

    async def outside_portals(self, event: RoomEvent) -> None:
        """Events in rooms that are no portal: a real user inviting a ghost starts a chat."""
        if isinstance(event, StateEvent):
            await self.chats.handle_ghost_invite(event)


def build_direct(
    *,
    config: Config,
    http: aiohttp.ClientSession,
    files: FileServerClient,
    bot: IntentAPI,
    rooms: PortalRooms,
    portals: PortalRepo,
    messages: MessageRepo,
    cursors: CursorRepo,
    outbox: OutboxRepo,
    kv: KVRepo,
    ghosts: GhostManager,
    logins: LoginManager,
    ghost_pattern: re.Pattern[str],
    portal_lock: Callable[[int], Any],
) -> DirectBridge:
    """Build every part of direct chats; nothing runs until :meth:`DirectBridge.start`."""
    holder: list[DirectInbound] = []

    async def handle(*args: Any) -> None:
        await holder[0].handle(*args)

    accounts = SessionAccounts(
        snode=build_snode_client(http, config.session),
        files=files,
        cursors=cursors,
        handler=handle,
        poll_interval=config.session.poll_interval,
    )
    chats = DirectChats(
        portals=portals,
        ghosts=ghosts,
        accounts=accounts,
        logins=logins,
        cursors=cursors,
        rooms=rooms,
        bot=bot,
        bot_mxid=config.bot_mxid,
        domain=config.homeserver.domain,
        command_prefix=config.bridge.command_prefix,
    )
    inbound = DirectInbound(
        chats=chats,
        ghosts=ghosts,
        messages=messages,
        cursors=cursors,
        owner_of=accounts.owner_of,
        portal_lock=portal_lock,
    )
    holder.append(inbound)

    outbound = DirectOutbound(
        accounts=accounts,
        messages=messages,
        outbox=outbox,
        portals=portals,
        ghost_pattern=ghost_pattern,
        download=media_download(bot),
        portal_lock=portal_lock,
    )
    commands = direct_commands(chats, logins, accounts, config.bridge.command_prefix)
    profiles = SessionProfiles(bot, kv, media_download(bot))
    return DirectBridge(accounts, chats, inbound, outbound, commands, profiles)
