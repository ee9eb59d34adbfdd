"""Portal commands: bridge, open, unbridge, relay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from mautrix.appservice import IntentAPI
from mautrix.types import RoomID

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.community.portals import CommunityPortals, Opened
from bridge.core.community.service import Communities, CommunityJoinError
from bridge.core.portal.rooms import PortalRoomError, PortalRooms
from bridge.db.records import PortalKind, PortalRecord
from bridge.db.repos.portals import PortalRepo

SECTION = "Portals"


@dataclass(frozen=True)
class PortalCommandDeps:
    rooms: PortalRooms
    portals: PortalRepo
    communities: Communities
    community_portals: CommunityPortals
    bot: IntentAPI
    is_ghost: Callable[[str], bool]
    intent_for: Callable[[str], IntentAPI]
    #: What a kind does once one of its portals is unbridged (groups: stop polling).
    on_unbridged: Mapping[PortalKind, Callable[[PortalRecord], Awaitable[None]]] = field(
        default_factory=dict
    )


def _opened_text(opened: Opened) -> str:
    link = f"[{opened.name}](https://matrix.to/#/{opened.portal.mxid})"
    if opened.created:
        return (
            f"Created {link}; I invited you and made you its admin. Its address is "
            f"`{opened.alias}`."
        )
    if opened.invited:
        return (
            f"That community room is already bridged: I invited you to the existing portal {link}."
        )
    return f"That community room is already bridged to {link}, and you are in it."


async def end_portal(deps: PortalCommandDeps, portal: PortalRecord) -> None:
    """Unbridge ``portal`` (also used by ``finalize``, docs/migration.md §6): its Session side
    stops, ghosts leave, the room and its history stay."""
    if portal.kind == PortalKind.COMMUNITY:
        deps.communities.unfollow(portal)
    if portal.mxid is not None:
        members = await deps.bot.get_joined_members(RoomID(portal.mxid))
        ghosts = [deps.intent_for(str(m)) for m in members if deps.is_ghost(str(m))]
    else:
        ghosts = []
    await deps.rooms.detach(portal, ghosts)
    if portal.kind == PortalKind.COMMUNITY:
        await deps.community_portals.unbridged(portal)
    if (after := deps.on_unbridged.get(portal.kind)) is not None:
        await after(portal)


def portal_commands(deps: PortalCommandDeps) -> list[Command]:
    """Bridging community rooms into Matrix rooms and managing those portals."""

    async def needs_url(evt: CommandEvent) -> str | None:
        if len(evt.args) != 1:
            await evt.reply(f"Give the community URL: `{evt.name} https://host/room?public_key=…`")
            return None
        return evt.args[0]

    async def bridge_cmd(evt: CommandEvent) -> None:
        url = await needs_url(evt)
        if url is None:
            return
        if evt.in_management_room:
            await evt.reply("Run `bridge` in the room to bridge, or use `open` to get a new room.")
            return
        if not await deps.rooms.is_room_admin(evt.room_id, evt.sender):
            await evt.reply("Only an admin of this room can bridge it.")
            return
        try:
            channel = await deps.community_portals.bridge(evt.room_id, url)
        except (CommunityJoinError, PortalRoomError) as e:
            await evt.reply(str(e))
            return
        await evt.reply(
            f"This room is now bridged to the Session community room **{channel.displayname}**."
        )

    async def open_cmd(evt: CommandEvent) -> None:
        url = await needs_url(evt)
        if url is None:
            return
        try:
            opened = await deps.community_portals.open(url, evt.sender)
        except (CommunityJoinError, PortalRoomError) as e:
            await evt.reply(str(e))
            return
        await evt.reply(_opened_text(opened))

    async def current_portal(evt: CommandEvent) -> PortalRecord | None:
        portal = await deps.portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None:
            await evt.reply("This room is not bridged.")
            return None
        return portal

    async def unbridge_cmd(evt: CommandEvent) -> None:
        portal = await current_portal(evt)
        if portal is None:
            return
        if evt.level < Level.ADMIN and not await deps.rooms.is_room_admin(evt.room_id, evt.sender):
            await evt.reply("Only an admin of this room (or of the bridge) can unbridge it.")
            return
        await end_portal(deps, portal)
        await evt.reply("This room is no longer bridged. Its history stays here.")

    async def relay_cmd(evt: CommandEvent) -> None:
        if evt.args not in (("on",), ("off",)):
            await evt.reply("Use `relay on` or `relay off`.")
            return
        portal = await current_portal(evt)
        if portal is None:
            return
        on = evt.args[0] == "on"
        await deps.portals.update(replace(portal, relay_enabled=on))
        if on:
            await evt.reply(
                "Relay is on: messages of people without a Session login are sent through "
                "the bridge, with their name."
            )
        else:
            await evt.reply("Relay is off: only people with a Session login are heard on Session.")

    return [
        Command(
            "bridge",
            SECTION,
            "bridge this room to a community room",
            bridge_cmd,
            Level.USER,
            "<community URL>",
        ),
        Command(
            "open",
            SECTION,
            "create a new room bridged to a community room",
            open_cmd,
            Level.USER,
            "<community URL>",
        ),
        Command("unbridge", SECTION, "stop bridging this room", unbridge_cmd, Level.USER),
        Command(
            "relay",
            SECTION,
            "relay messages of users without a Session login",
            relay_cmd,
            Level.ADMIN,
            "<on|off>",
        ),
    ]


__all__ = ["PortalCommandDeps", "end_portal", "portal_commands"]
