"""Commands for bridge admins: ``portals``, ``logins`` and ``status``.

They answer only in the admin's management room (the lists name other people's rooms and
Session IDs). ``status`` runs the checks the composition root wires (the homeserver, the
database, each Session server and the storage network), each bounded in time, and answers one
line per check.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.community.service import parse_community_key
from bridge.core.direct.chats import parse_direct_key
from bridge.core.portal.health import Check
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo
from bridge.db.repos.users import UserRepo

SECTION = "Bridge admin"
LINES_PER_MESSAGE = 50  # long lists are split, so no message nears Matrix's 64 KiB limit

StatusChecks = Callable[[], Awaitable[list[Check]]]


@dataclass(frozen=True)
class AdminDeps:
    portals: PortalRepo
    users: UserRepo
    status: StatusChecks


def since(ms: int) -> str:
    """A database timestamp (ms since the epoch) as UTC date and time."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def session_side(portal: PortalRecord) -> str:
    """What a portal is bridged to, as an admin reads it."""
    try:
        if portal.kind == PortalKind.COMMUNITY:
            server, token = parse_community_key(portal.session_key)
            return server.room_url(token)
        if portal.kind == PortalKind.DIRECT:
            ours, peer = parse_direct_key(portal.session_key)
            return f"`{peer}` with `{ours}`"
    except ValueError:
        pass
    return f"`{portal.session_key}`"


def portal_line(portal: PortalRecord) -> str:
    relay = "relay on" if portal.relay_enabled else "relay off"
    return (
        f"- {portal.kind.value}: {portal.mxid} ↔ {session_side(portal)} · {relay} · "
        f"since {since(portal.created_at)}"
    )


def status_line(check: Check) -> str:
    if check.problem is None:
        detail = f" ({check.detail})" if check.detail else ""
        return f"- OK: {check.name}{detail}"
    return f"- **failed**: {check.name}: {check.problem}"


async def reply_lines(evt: CommandEvent, title: str, lines: Sequence[str]) -> None:
    for start in range(0, len(lines), LINES_PER_MESSAGE):
        chunk = lines[start : start + LINES_PER_MESSAGE]
        await evt.reply("\n".join([title if start == 0 else f"{title} (continued)", *chunk]))


async def only_in_management_room(evt: CommandEvent) -> bool:
    """True in the admin's management room; elsewhere the admin is told where to ask."""
    if evt.in_management_room:
        return True
    await evt.reply(
        f"`{evt.name}` answers only in your management room (a direct chat with me): "
        "its answer is for bridge admins."
    )
    return False


def admin_commands(deps: AdminDeps) -> list[Command]:
    """The bridge-admin section."""
    only_here = only_in_management_room

    async def portals_cmd(evt: CommandEvent) -> None:
        if not await only_here(evt):
            return
        portals = await deps.portals.list_active()
        if not portals:
            await evt.reply("No portals: nothing is bridged yet.")
            return
        await reply_lines(evt, f"{len(portals)} portal(s):", [portal_line(p) for p in portals])

    async def logins_cmd(evt: CommandEvent) -> None:
        if not await only_here(evt):
            return
        logins = await deps.users.list_user_logins()
        if not logins:
            await evt.reply("No Session logins.")
            return
        lines = [f"- {r.mxid}: `{r.session_id}` · since {since(r.created_at)}" for r in logins]
        await reply_lines(evt, f"{len(logins)} Session login(s):", lines)

    async def status_cmd(evt: CommandEvent) -> None:
        if not await only_here(evt):
            return
        checks = await deps.status()
        failed = sum(not c.ok for c in checks)
        title = "Status: all OK." if not failed else f"Status: {failed} check(s) failed."
        await reply_lines(evt, title, [status_line(c) for c in checks])

    return [
        Command("portals", SECTION, "list every portal", portals_cmd, Level.ADMIN),
        Command("logins", SECTION, "list every Session login", logins_cmd, Level.ADMIN),
        Command(
            "status",
            SECTION,
            "check the homeserver, the database and the Session servers",
            status_cmd,
            Level.ADMIN,
        ),
    ]
