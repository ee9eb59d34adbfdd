"""Group commands (README, Group portals): ``groups`` lists the sender's Session groups and
their portals; ``groups pending``, ``groups accept <id>`` and ``groups decline <id>`` decide on
the bot's group invites (bridge admins, in their management room); ``sync`` re-reads a group
portal's members and info now. (``unbridge`` is the generic one, bridge/commands/portals.py,
which also stops polling the group.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.group.bot_invites import BotInvites, GroupInviteError
from bridge.core.group.resync import GroupSyncError, Synced
from bridge.core.logins import LoginManager
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.portals import PortalRepo

SECTION = "Groups"
#: Re-read a group portal's members and Info now (the group kind's ``sync``).
SyncGroup = Callable[[PortalRecord], Awaitable[Synced]]


def _state(accepted: bool, removed: bool) -> str:
    if removed:
        return "ended"
    return "member" if accepted else "invited"


def sync_command(portals: PortalRepo, sync: SyncGroup) -> Command:
    """``sync`` in a group portal; every refusal says why."""

    async def handle(evt: CommandEvent) -> None:
        portal = await portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None:
            await evt.reply("`sync` works in a bridged group room; this room is not bridged.")
            return
        if portal.kind != PortalKind.GROUP:
            await evt.reply(
                f"`sync` works in a bridged group room; this room is a {portal.kind.value} portal."
            )
            return
        try:
            done = await sync(portal)
        except GroupSyncError as e:
            await evt.reply(str(e))
            return
        await evt.reply(
            f"Synced **{done.name}** with Session: {done.members} members "
            f"({done.admins} admins); the room's name, topic, picture, members and power "
            "levels are set from the group again."
        )

    return Command(
        "sync",
        SECTION,
        "in a group portal: re-read the group's members and info now",
        handle,
        Level.USER,
    )


def group_commands(
    invites: BotInvites,
    groups: GroupRepo,
    portals: PortalRepo,
    logins: LoginManager,
    prefix: str,
    sync: SyncGroup | None = None,
) -> list[Command]:
    """The groups section (``sync`` when the group kind gives ``sync``)."""

    async def list_mine(evt: CommandEvent) -> None:
        lines = []
        for login in await logins.logins_of(evt.sender):
            for m in await groups.memberships(login.session_id):
                portal = await portals.get_by_key(PortalKind.GROUP, m.group_id)
                room = portal.mxid if portal is not None and portal.mxid else "no room"
                state = _state(m.accepted, m.removed)
                lines.append(f"- **{m.name or m.group_id[:12]}** `{m.group_id}` ({state}): {room}")
        if not lines:
            await evt.reply(
                "None of your Session logins is in a group the bridge knows. A group invite "
                "to your login shows up here as an invite to the group's room."
            )
            return
        await evt.reply("Your Session groups:\n" + "\n".join(lines))

    async def pending(evt: CommandEvent) -> None:
        waiting = await invites.pending()
        if not waiting:
            await evt.reply("No group invite of the bot is waiting.")
            return
        lines = [
            f"- **{m.name or '(no name)'}** `{m.group_id}`, invited by `{m.inviter}`"
            for m in waiting
        ]
        await evt.reply(
            "Group invites of the bot waiting for a decision "
            f"(`{prefix} groups accept <id>` or `{prefix} groups decline <id>`):\n"
            + "\n".join(lines)
        )

    async def decide(evt: CommandEvent, accept: bool) -> None:
        if len(evt.args) != 2:
            await evt.reply(f"Usage: `{prefix} groups {evt.args[0]} <group id>`")
            return
        try:
            found = await invites.find(evt.args[1])
            if accept:
                portal = await invites.accept(found.group_id, (evt.sender,))
                await evt.reply(
                    f"The bot joined **{found.name}**; its room is {portal.mxid} (I invited you)."
                )
            else:
                await invites.decline(found.group_id)
                await evt.reply(f"Declined the invite to **{found.name}**.")
        except GroupInviteError as e:
            await evt.reply(str(e))

    async def handle(evt: CommandEvent) -> None:
        sub = evt.args[0].lower() if evt.args else ""
        if not sub:
            await list_mine(evt)
            return
        if sub not in ("pending", "accept", "decline"):
            await evt.reply(f"Usage: `{prefix} groups [pending | accept <id> | decline <id>]`")
            return
        if evt.level < Level.ADMIN:
            await evt.reply("Only bridge admins decide on the bot's group invites.")
            return
        if not evt.in_management_room:
            await evt.reply("Decide on group invites in your management room with me.")
            return
        if sub == "pending":
            await pending(evt)
        else:
            await decide(evt, sub == "accept")

    found = [sync_command(portals, sync)] if sync is not None else []
    return [
        *found,
        Command(
            "groups",
            SECTION,
            "your Session groups and their rooms; `pending`/`accept`/`decline` (admins): "
            "the bot's group invites",
            handle,
            Level.USER,
            "[pending | accept <id> | decline <id>]",
        ),
    ]
