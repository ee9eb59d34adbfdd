"""Direct-chat commands: ``pm <Session ID>``, ``accept`` (a message request)."""

from __future__ import annotations

from mautrix.errors import MatrixError

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.direct.accounts import SessionAccounts
from bridge.core.direct.chats import DirectChatError, DirectChats, parse_direct_key, room_link
from bridge.core.logins import LoginManager
from bridge.ids import InvalidId, SessionID
from bridge.session.errors import SessionError

SECTION = "Direct chats"


def direct_commands(
    chats: DirectChats, logins: LoginManager, accounts: SessionAccounts, prefix: str
) -> list[Command]:
    """The direct-chat section."""

    async def pm(evt: CommandEvent) -> None:
        if not 1 <= len(evt.args) <= 2:
            await evt.reply(f"Usage: `{prefix} pm <Session ID> [your Session ID]`")
            return
        try:
            peer = SessionID.parse(evt.args[0].strip()).value
        except InvalidId:
            await evt.reply(
                f"`{evt.args[0]}` is not a Session ID: those are 66 hexadecimal digits "
                "starting with `05`."
            )
            return
        mine = await logins.logins_of(evt.sender)
        if len(evt.args) == 2:
            mine = [login for login in mine if login.session_id == evt.args[1].strip().lower()]
        if not mine:
            await evt.reply(
                "You need a Session login to chat with Session users: use "
                f"`{prefix} login` (or `{prefix} login new`) in your management room."
                if len(evt.args) == 1
                else "You have no such Session login. `whoami` lists yours."
            )
            return
        running = accounts.get(mine[0].session_id)
        if running is None:
            await evt.reply("Your Session account is not connected yet; try again in a moment.")
            return
        try:
            portal = await chats.start_chat(running[0], peer)
        except DirectChatError as e:
            await evt.reply(str(e))
            return
        except MatrixError as e:
            await evt.reply(f"The chat room could not be created: {e}")
            return
        await evt.reply(
            f"Your direct chat with `{peer}` is ready: {room_link(str(portal.mxid))} "
            "(I invited you)."
        )

    async def accept(evt: CommandEvent) -> None:
        portal = await chats.portal_in_room(evt.room_id)
        if portal is None:
            await evt.reply("Send `accept` in the direct chat whose message request you accept.")
            return
        ours, peer = parse_direct_key(portal.session_key)
        running = accounts.get(ours)
        if running is None or running[0].owner_mxid != evt.sender:
            await evt.reply("Only the owner of this chat's Session account can accept it.")
            return
        if accounts.configs is None:
            await evt.reply("Message requests are accepted by replying here.")
            return
        try:
            done = await accounts.configs.accept(running[1], peer)
        except SessionError:
            await evt.reply("The Session network cannot be reached; try again in a moment.")
            return
        await evt.reply(
            f"Accepted: `{peer}` is now one of your Session contacts."
            if done
            else "This chat is accepted already."
        )

    return [
        Command(
            "accept",
            SECTION,
            "accept the message request of this direct chat's Session user",
            accept,
            Level.USER,
        ),
        Command(
            "pm",
            SECTION,
            "start a direct chat with a Session user",
            pm,
            Level.USER,
            "<Session ID> [your Session ID]",
        ),
    ]
