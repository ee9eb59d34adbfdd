"""``destroy-group`` needs ``destroy-group confirm`` from the same user in the same room within
the window, and every refusal says why (bridge/commands/group_admin.py)."""

from __future__ import annotations

from typing import Any

from bridge.commands.group_admin import CONFIRM_WINDOW_S, GroupAdminCommands
from bridge.commands.permissions import Level
from bridge.commands.registry import CommandEvent
from bridge.core.group.admin_acting import Acting, AdminRefused
from bridge.db.records import PortalKind, PortalRecord

ROOM = "!group:x"
PORTAL = PortalRecord(
    1, PortalKind.GROUP, "03" + "ab" * 32, ROOM, "G", None, None, None, False, None, False, 0, None
)


class FakeActing:
    def __init__(self, room_admins: set[str], group_admin: bool) -> None:
        self.room_admins, self.group_admin = room_admins, group_admin
        self.done: list[str] = []

    async def is_room_admin(self, portal: PortalRecord, mxid: str) -> bool:
        return mxid in self.room_admins

    async def run(self, portal: PortalRecord, mxid: str, what: str, work: Any) -> Any:
        if mxid not in self.room_admins:
            raise AdminRefused("Only an admin of this room can " + what)
        if not self.group_admin:
            raise AdminRefused("not a group admin")
        self.done.append(what)
        return Acting("05" + "cd" * 32, None), None  # type: ignore[arg-type]


class FakeAdmin:
    def __init__(self, acting: FakeActing) -> None:
        self.acting = acting


class FakePortals:
    async def get_by_mxid(self, room: str) -> PortalRecord | None:
        return PORTAL if room == ROOM else None


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run(commands: GroupAdminCommands, sender: str, *args: str, room: str = ROOM) -> str:
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    event = CommandEvent(
        sender, room, "destroy-group", args, " ".join(args), Level.USER, False, reply
    )
    await commands.destroy(event)
    (text,) = replies
    return text


def make(group_admin: bool = True) -> tuple[GroupAdminCommands, FakeActing, Clock]:
    acting, clock = FakeActing({"@a:x"}, group_admin), Clock()
    commands = GroupAdminCommands(FakeAdmin(acting), FakePortals(), clock)  # type: ignore[arg-type]
    return commands, acting, clock


async def test_destroy_needs_a_confirmation_in_time_from_the_same_user() -> None:
    commands, acting, clock = make()
    assert "Nothing to confirm" in await run(commands, "@a:x", "confirm")
    assert "destroy-group confirm" in await run(commands, "@a:x")
    assert "Nothing to confirm" in await run(commands, "@b:x", "confirm")  # not theirs
    clock.now += CONFIRM_WINDOW_S + 1
    assert "Nothing to confirm" in await run(commands, "@a:x", "confirm")  # too late
    assert acting.done == []
    await run(commands, "@a:x")
    clock.now += CONFIRM_WINDOW_S - 1
    assert "deleted" in await run(commands, "@a:x", "confirm")
    assert acting.done == ["delete the group"]
    assert "Nothing to confirm" in await run(commands, "@a:x", "confirm")  # used up


async def test_refusals_say_why() -> None:
    commands, acting, _ = make(group_admin=False)
    assert "Only an admin of this room" in await run(commands, "@b:x")
    assert "bridged Session group" in await run(commands, "@a:x", room="!other:x")
    await run(commands, "@a:x")
    assert "not a group admin" in await run(commands, "@a:x", "confirm")
    assert acting.done == []


class InvitingAdmin(FakeAdmin):
    def __init__(self, acting: FakeActing) -> None:
        super().__init__(acting)
        self.invites: list[tuple[str, bool | None]] = []

    async def invite(
        self, portal: PortalRecord, sender: str, member: Any, history: bool | None = None
    ) -> Acting:
        self.invites.append((member.value, history))
        return Acting("05" + "cd" * 32, None)  # type: ignore[arg-type]


async def invite(commands: GroupAdminCommands, *args: str) -> str:
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    event = CommandEvent("@a:x", ROOM, "invite", args, " ".join(args), Level.USER, False, reply)
    await commands.invite(event)
    (text,) = replies
    return text


async def test_invite_shares_history_as_configured_unless_the_inviter_says() -> None:
    admin = InvitingAdmin(FakeActing({"@a:x"}, True))
    commands = GroupAdminCommands(admin, FakePortals())  # type: ignore[arg-type]
    sid = "05" + "ef" * 32
    assert "Invited" in await invite(commands, sid)
    assert "Invited" in await invite(commands, sid, "history")
    assert "Invited" in await invite(commands, sid, "New-Only")
    assert admin.invites == [(sid, None), (sid, True), (sid, False)]
    usage = "Usage: `invite <Session ID> [history|new-only]`"
    assert await invite(commands, sid, "everything") == usage
    assert await invite(commands) == usage
    assert len(admin.invites) == 3
