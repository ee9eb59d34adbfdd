"""Direct-chat commands: ``pm <Session ID>``."""

from __future__ import annotations

from mautrix.errors import MatrixError

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.direct.accounts import SessionAccounts
from bridge.core.direct.chats import DirectChatError, DirectChats, room_link
from bridge.core.logins import LoginManager
from bridge.ids import InvalidId, SessionID

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

    return [
        Command(
            "pm",
            SECTION,
            "start a direct chat with a Session user",
            pm,
            Level.USER,
            "<Session ID> [your Session ID]",
        )
    ]
