"""``create-group [name]``: a new Session group for the room the command is run in (README,
Running a Session group from Matrix)."""

from __future__ import annotations

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.group.create import CreatedGroupPortal, GroupCreateError, GroupCreator

SECTION = "Groups"


def _created_text(created: CreatedGroupPortal) -> str:
    who = (
        "the bridge's own Session account (you have no login)"
        if created.as_bot
        else f"your Session login `{created.acting}`"
    )
    lines = [
        f"This room is now the portal of the new Session group **{created.name}** "
        f"(`{created.group_id}`); its admin is {who}."
    ]
    if created.invited:
        lines.append(f"Invited on Session: {len(created.invited)} member(s) of this room.")
    if created.not_invited:
        ids = ", ".join(f"`{sid}`" for sid in created.not_invited)
        lines.append(f"Not invited (the Session network refused, try later): {ids}.")
    if created.picture_note:
        lines.append(created.picture_note)
    return "\n".join(lines)


def group_create_commands(creator: GroupCreator) -> list[Command]:
    """The ``create-group`` command."""

    async def handle(evt: CommandEvent) -> None:
        if evt.in_management_room:
            await evt.reply(
                "Run `create-group` in the room that should become the group's portal "
                "(invite me there and give me moderator rights first)."
            )
            return
        try:
            created = await creator.create(evt.room_id, evt.sender, evt.raw_args.strip())
        except GroupCreateError as e:
            await evt.reply(str(e))
            return
        await evt.reply(_created_text(created))

    return [
        Command(
            "create-group",
            SECTION,
            "make a new Session group for this room (room admins; your login is its admin)",
            handle,
            Level.USER,
            "[name]",
        )
    ]
