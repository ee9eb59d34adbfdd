"""Running an existing Session group from its portal (README, Running a Session group from
Matrix): ``invite <Session ID> [history|new-only]`` (whether the invitee reads the group's
recent history; without a word, as ``groups.invite_with_history`` says), ``promote <Session
ID>`` and ``destroy-group`` (confirmed with ``destroy-group confirm`` within
:data:`CONFIRM_WINDOW_S`). Each needs a room admin and an
acting identity that is a group admin (:mod:`bridge.core.group.admin_acting`); every refusal
says why."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.group.admin_acting import AdminRefused
from bridge.core.group.admin_events import GroupAdminEvents
from bridge.core.portal.outbox import TemporaryFailure
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.ids import SessionID
from bridge.session.groups.admin import GroupAdmin

SECTION = "Groups"
CONFIRM_WINDOW_S = 60.0
T = TypeVar("T")

UNREACHABLE = (
    "The Session network cannot be reached just now; nothing was changed. Try again later."
)
#: The last word of ``invite``: share the group's recent history with the invitee or not.
HISTORY_WORDS = {"history": True, "new-only": False}


class GroupAdminCommands:
    """The handlers (see the module docstring); pending confirmations live in memory."""

    def __init__(
        self,
        admin: GroupAdminEvents,
        portals: PortalRepo,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin
        self._acting = admin.acting
        self._portals = portals
        self._clock = clock
        self._destroying: dict[tuple[str, str], float] = {}  # (room, sender) → deadline

    async def _portal(self, evt: CommandEvent, what: str) -> PortalRecord | None:
        portal = await self._portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None or portal.kind != PortalKind.GROUP:
            await evt.reply(f"`{what}` works in the room of a bridged Session group.")
            return None
        return portal

    async def _run(
        self,
        evt: CommandEvent,
        portal: PortalRecord,
        what: str,
        work: Callable[[GroupAdmin], Awaitable[T]],
    ) -> str | None:
        """The acting identity's Session id once ``work`` is done; None if refused (told)."""
        try:
            acting, _ = await self._acting.run(portal, evt.sender, what, work)
        except AdminRefused as e:
            await evt.reply(str(e))
            return None
        except TemporaryFailure:
            await evt.reply(UNREACHABLE)
            return None
        return acting.session_id

    async def _invite(
        self, evt: CommandEvent, portal: PortalRecord, member: SessionID, history: bool | None
    ) -> str | None:
        try:
            return (await self._admin.invite(portal, evt.sender, member, history)).session_id
        except AdminRefused as e:
            await evt.reply(str(e))
        except TemporaryFailure:
            await evt.reply(UNREACHABLE)
        return None

    async def _member_command(self, evt: CommandEvent, name: str) -> None:
        words = [w.strip().lower() for w in evt.args]
        history = HISTORY_WORDS.get(words[-1]) if name == "invite" and len(words) == 2 else None
        if len(words) != (1 if history is None else 2):
            more = " [history|new-only]" if name == "invite" else ""
            await evt.reply(f"Usage: `{name} <Session ID>{more}`")
            return
        portal = await self._portal(evt, name)
        if portal is None:
            return
        try:
            member = SessionID.parse(evt.args[0].strip().lower())
        except ValueError:
            await evt.reply(f"`{evt.args[0]}` is not a Session ID (66 hex digits, starting 05).")
            return
        if name == "invite":
            acting = await self._invite(evt, portal, member, history)
            done = "Invited {sid} to this Session group; they are in once they accept."
        else:
            acting = await self._run(
                evt, portal, "make someone a group admin", lambda a: a.promote(member)
            )
            done = "{sid} is a group admin now."
        if acting is not None:
            await evt.reply(done.format(sid=f"`{member.value}`") + f" (as `{acting}`)")

    async def invite(self, evt: CommandEvent) -> None:
        await self._member_command(evt, "invite")

    async def promote(self, evt: CommandEvent) -> None:
        await self._member_command(evt, "promote")

    async def destroy(self, evt: CommandEvent) -> None:
        portal = await self._portal(evt, "destroy-group")
        if portal is None:
            return
        key = (evt.room_id, evt.sender)
        if evt.args != ("confirm",):
            if not await self._acting.is_room_admin(portal, evt.sender):
                await evt.reply("Only an admin of this room can delete its Session group.")
                return
            self._destroying[key] = self._clock() + CONFIRM_WINDOW_S
            await evt.reply(
                "`destroy-group` deletes this Session group for every member, on Session too; "
                "it cannot be undone. This room stays as a plain Matrix room. Send "
                f"`destroy-group confirm` within {int(CONFIRM_WINDOW_S)} seconds to do it."
            )
            return
        deadline = self._destroying.pop(key, None)
        if deadline is None or deadline < self._clock():
            await evt.reply(
                "Nothing to confirm: send `destroy-group` first, then `destroy-group confirm` "
                f"within {int(CONFIRM_WINDOW_S)} seconds."
            )
            return
        acting = await self._run(evt, portal, "delete the group", lambda a: a.destroy())
        if acting is not None:
            await evt.reply(f"The Session group is deleted (as `{acting}`).")


def group_admin_commands(admin: GroupAdminEvents, portals: PortalRepo) -> list[Command]:
    """The commands that run an existing group from its portal."""
    handlers = GroupAdminCommands(admin, portals)
    return [
        Command(
            "invite",
            SECTION,
            "in a group's room: invite a Session account to the group, with its recent history "
            "or new messages only (room admins)",
            handlers.invite,
            Level.USER,
            "<Session ID> [history|new-only]",
        ),
        Command(
            "promote",
            SECTION,
            "in a group's room: make a member a group admin (room admins)",
            handlers.promote,
            Level.USER,
            "<Session ID>",
        ),
        Command(
            "destroy-group",
            SECTION,
            "in a group's room: delete the Session group for everyone (room admins)",
            handlers.destroy,
            Level.USER,
            "[confirm]",
        ),
    ]
