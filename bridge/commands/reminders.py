"""Reminder and finalize commands: ``announce on|off``, ``remind <Session ID>``, ``finalize``
(docs/migration.md §5, §6)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.finalize import Finalizer
from bridge.core.remind import MemberReminder
from bridge.core.reminders import SHARED_KINDS, AnnounceFlags, SessionAnnouncer
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo

SECTION = "Migration"
log = logging.getLogger("bridge.commands.reminders")


@dataclass(frozen=True)
class ReminderCommandDeps:
    portals: PortalRepo
    flags: AnnounceFlags
    reminder: MemberReminder
    finalizer: Finalizer
    is_room_admin: Callable[[str, str], Awaitable[bool]]
    #: Session-side posters by portal kind: ``announce on`` in a group portal posts the
    #: room's link into the group (README, Group portals).
    announcers: Mapping[PortalKind, SessionAnnouncer] = field(default_factory=dict)


def reminder_commands(deps: ReminderCommandDeps) -> list[Command]:
    async def shared_portal(evt: CommandEvent, what: str) -> PortalRecord | None:
        portal = await deps.portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None or portal.kind not in SHARED_KINDS:
            await evt.reply(f"`{what}` works in a bridged community or group room.")
            return None
        return portal

    async def room_admin(evt: CommandEvent) -> bool:
        if evt.level >= Level.ADMIN or await deps.is_room_admin(evt.room_id, evt.sender):
            return True
        await evt.reply("Only an admin of this room (or of the bridge) can do that.")
        return False

    async def announce(evt: CommandEvent) -> None:
        portal = await shared_portal(evt, "announce")
        if portal is None:
            return
        if not evt.args:
            on = await deps.flags.is_on(portal.id)
            await evt.reply(f"Deadline reminders on Session are {'on' if on else 'off'} here.")
            return
        if evt.args not in (("on",), ("off",)):
            await evt.reply("Use `announce on` or `announce off`.")
            return
        if not await room_admin(evt):
            return
        on = evt.args[0] == "on"
        was_on = await deps.flags.is_on(portal.id)
        await deps.flags.set(portal.id, on)
        await evt.reply(
            "The bot will post the deadline reminders on the Session side of this room."
            if on
            else "No more deadline reminders on the Session side of this room."
        )
        if on and not was_on:
            await post_link(evt, portal)

    async def post_link(evt: CommandEvent, portal: PortalRecord) -> None:
        announcer = deps.announcers.get(portal.kind)
        if portal.kind != PortalKind.GROUP or announcer is None:
            return
        text = (
            f"This group is also on Matrix now; follow it there: https://matrix.to/#/{portal.mxid}"
        )
        try:
            await announcer.announce(portal, text)
        except Exception as e:  # the bot may not be a member of the group: say so
            log.info("The link of %s was not posted in its group: %s", portal.mxid, e)
            await evt.reply(
                "I could not post this room's link in the Session group (the bridge bot's "
                f"Session account has to be a member of it): {e}"
            )
            return
        await evt.reply("I posted this room's link in the Session group.")

    async def remind(evt: CommandEvent) -> None:
        if len(evt.args) != 1:
            await evt.reply("Usage: `remind <Session ID>`")
            return
        portal = await shared_portal(evt, "remind")
        if portal is None or not await room_admin(evt):
            return
        await evt.reply(await deps.reminder.remind(portal, evt.args[0]))

    async def finalize(evt: CommandEvent) -> None:
        portal = await shared_portal(evt, "finalize")
        if portal is None:
            return
        if evt.args != ("confirm",):
            await evt.reply(
                "`finalize` ends the bridge of this room for good: both sides get a last "
                "notice, Session is no longer read, the room and its history stay. "
                "Send `finalize confirm` to do it."
            )
            return
        if await deps.finalizer.portal(portal):
            await evt.reply("Finalized: this room is a plain Matrix room now.")
        else:
            await evt.reply("This room was already finalized.")

    return [
        Command(
            "announce",
            SECTION,
            "post the deadline reminders on the Session side of this room",
            announce,
            Level.USER,
            "[on|off]",
        ),
        Command(
            "remind",
            SECTION,
            "send one Session member a reminder from the bot's Session ID",
            remind,
            Level.USER,
            "<Session ID>",
        ),
        Command(
            "finalize",
            SECTION,
            "end this room's bridge for good, with last notices",
            finalize,
            Level.ADMIN,
            "[confirm]",
        ),
    ]
