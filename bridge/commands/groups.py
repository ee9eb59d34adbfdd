"""Group commands (README, Group portals): ``groups`` lists the sender's Session groups and
their portals; ``groups pending``, ``groups accept <id>`` and ``groups decline <id>`` decide on
the bot's group invites (bridge admins, in their management room)."""

from __future__ import annotations

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.group.bot_invites import BotInvites, GroupInviteError
from bridge.core.logins import LoginManager
from bridge.db.records import PortalKind
from bridge.db.repos.groups import GroupRepo
from bridge.db.repos.portals import PortalRepo

SECTION = "Groups"


def _state(accepted: bool, removed: bool) -> str:
    if removed:
        return "ended"
    return "member" if accepted else "invited"


def group_commands(
    invites: BotInvites, groups: GroupRepo, portals: PortalRepo, logins: LoginManager, prefix: str
) -> list[Command]:
    """The groups section."""

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

    return [
        Command(
            "groups",
            SECTION,
            "your Session groups and their rooms; `pending`/`accept`/`decline` (admins): "
            "the bot's group invites",
            handle,
            Level.USER,
            "[pending | accept <id> | decline <id>]",
        )
    ]
