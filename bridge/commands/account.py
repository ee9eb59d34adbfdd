"""Account commands: login, logout, whoami."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.expiring import ExpiringMessages
from bridge.core.logins import LoginError, LoginManager, blinded_id
from bridge.core.prompts import Prompts
from bridge.session.sogs.urls import CommunityServerRef

SECTION = "Account"
PHRASE_PROMPT = "recovery phrase"


def _redaction_note(redacted: bool) -> str:
    if redacted:
        return "I removed your message with the phrase."
    return (
        "**I could not remove the message with your phrase: please delete it yourself now.** "
        "(Give me moderator rights in this room and I will do it next time.)"
    )


async def finish_phrase_login(logins: LoginManager, evt: CommandEvent, phrase: str) -> None:
    """Log in with ``phrase`` from ``evt``'s message, which is removed first."""
    note = _redaction_note(await evt.redact_command())
    try:
        login = await logins.login_with_phrase(evt.sender, phrase)
    except LoginError as e:
        await evt.reply(f"{note}\n\nLogin failed: {e}")
        return
    await evt.reply(f"{note}\n\nLogged in as Session account `{login.session_id}`.")


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds)} seconds"


async def _no_servers() -> list[CommunityServerRef]:
    return []


def account_commands(
    logins: LoginManager,
    prompts: Prompts,
    prefix: str,
    expiring: ExpiringMessages,
    community_servers: Callable[[], Awaitable[list[CommunityServerRef]]] = _no_servers,
) -> list[Command]:
    """The account section; ``prompts`` carries the wait for a phrase sent on its own,
    ``expiring`` shows a new phrase until the user saved it, and ``community_servers`` lists
    the servers of bridged communities (for blinded ids)."""

    async def login(evt: CommandEvent) -> None:
        if not evt.in_management_room:
            await evt.redact_command()
            await evt.reply(
                "For your safety, log in only in your management room: open a direct chat "
                "with me and send `login` there."
            )
            return
        if evt.args[:1] == ("new",):
            await login_new(evt)
            return
        if evt.args:
            await finish_phrase_login(logins, evt, evt.raw_args)
            return
        prompts.open(evt.sender, PHRASE_PROMPT, evt.room_id)
        await evt.reply(
            "Send your 13-word Session recovery phrase as your next message. I will delete that "
            "message at once and keep the account key encrypted. Send `cancel` to stop."
        )

    async def login_new(evt: CommandEvent) -> None:
        created = await logins.create_new(evt.sender)
        await evt.reply(
            f"Created the Session account `{created.session_id}`. My next message shows its "
            "recovery phrase, once: write it down, then send `saved` and I will delete that "
            f"message. If you do not, I delete it anyway after {_duration(expiring.ttl)}."
        )
        await expiring.post(
            evt.room_id,
            evt.sender,
            f"Recovery phrase of `{created.session_id}`:\n\n`{created.identity.phrase}`",
            cause=evt.event_id or created.session_id,
        )

    async def saved(evt: CommandEvent) -> None:
        if await expiring.confirm(evt.sender):
            await evt.reply("Thank you: I deleted the message with your recovery phrase.")
            return
        await evt.reply("There is no message with a recovery phrase of yours left to delete.")

    async def logout(evt: CommandEvent) -> None:
        target = evt.args[0] if evt.args else None
        removed = await logins.logout(evt.sender, target)
        if not removed:
            await evt.reply("You have no such Session login. `whoami` lists yours.")
            return
        await evt.reply("Logged out of " + ", ".join(f"`{s}`" for s in removed) + ".")

    async def whoami(evt: CommandEvent) -> None:
        mine = await logins.logins_of(evt.sender)
        if not mine:
            await evt.reply(
                f"You have no Session login. Use `{prefix} login` in your management room."
            )
            return
        servers = await community_servers()
        lines = ["Your Session accounts:"]
        for login in mine:
            lines.append(f"- `{login.session_id}`")
            lines += [
                f"  - on {server.base_url}: `{blinded_id(login, server.pubkey)}`"
                for server in servers
            ]
        await evt.reply("\n".join(lines))

    return [
        Command(
            "login",
            SECTION,
            "log in with a Session recovery phrase, or `login new`",
            login,
            Level.USER,
            "[new]",
        ),
        Command(
            "logout",
            SECTION,
            "remove a Session login (all, or the one named)",
            logout,
            Level.USER,
            "[session id]",
        ),
        Command(
            "saved",
            SECTION,
            "you wrote down the phrase `login new` showed: delete its message",
            saved,
            Level.USER,
        ),
        Command("whoami", SECTION, "show your Session accounts", whoami, Level.USER),
    ]
