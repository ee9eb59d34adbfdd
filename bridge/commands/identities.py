"""Bridge-made Session identities: ``session-identity on|off`` for a user, ``identities
allow|deny`` for a portal's admins (docs/migration.md §7)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.commands.permissions import Level
from bridge.commands.registry import Command, CommandEvent
from bridge.core.made_ids import SHARED_KINDS, MadeIdentities, MadeIdentity
from bridge.db.records import PortalRecord
from bridge.db.repos.portals import PortalRepo

log = logging.getLogger("bridge.commands.identities")

SECTION = "Migration"


@dataclass(frozen=True)
class IdentityCommandDeps:
    made: MadeIdentities
    portals: PortalRepo
    publish: Callable[[MadeIdentity], Awaitable[object]]
    is_room_admin: Callable[[str, str], Awaitable[bool]]
    # `identities deny`: the made identities that were members leave the portal's group;
    # how many left.
    on_denied: Callable[[PortalRecord], Awaitable[int]] | None = None


def identity_commands(deps: IdentityCommandDeps) -> list[Command]:
    made = deps.made

    async def session_identity(evt: CommandEvent) -> None:
        if evt.args == ("on",):
            identity, answer = await made.turn_on(evt.sender)
            if identity is not None:
                try:
                    await deps.publish(identity)
                except Exception as e:  # the identity works; its profile is shown on messages
                    log.warning("Profile of %s not published: %s", identity.session_id[:10], e)
            await evt.reply(answer)
        elif evt.args == ("off",):
            await evt.reply(await made.turn_off(evt.sender))
        elif not evt.args:
            await evt.reply(await _status(made, evt.sender))
        else:
            await evt.reply("Use `session-identity on` or `session-identity off`.")

    async def identities(evt: CommandEvent) -> None:
        portal = await deps.portals.get_by_mxid(evt.room_id)
        if portal is None or portal.unbridged_at is not None or portal.kind not in SHARED_KINDS:
            await evt.reply("`identities` works in a bridged community or group room.")
            return
        if not evt.args:
            await evt.reply(await _portal_status(made, portal))
            return
        if evt.args not in (("allow",), ("deny",)):
            await evt.reply("Use `identities allow` or `identities deny`.")
            return
        if evt.level < Level.ADMIN and not await deps.is_room_admin(evt.room_id, evt.sender):
            await evt.reply("Only an admin of this room (or of the bridge) can do that.")
            return
        allow = evt.args[0] == "allow"
        await made.set_allowed(portal, allow)
        if allow:
            await evt.reply(
                "Bridge-made Session identities are allowed here: the messages of users who "
                "turned theirs on (`session-identity on`) go to Session as those identities."
                + ("" if made.settings.enabled else " (They are turned off on this bridge now.)")
            )
            return
        left = await _leave(deps, portal)
        await evt.reply(
            "Bridge-made Session identities are no longer used here: those users are "
            "relayed again." + (f" {left} of them left the group on Session." if left else "")
        )

    return [
        Command(
            "session-identity",
            SECTION,
            "let the bridge make a Session identity that posts as you where rooms allow it",
            session_identity,
            Level.USER,
            "[on|off]",
        ),
        Command(
            "identities",
            SECTION,
            "allow bridge-made Session identities in this room",
            identities,
            Level.USER,
            "[allow|deny]",
        ),
    ]


async def _leave(deps: IdentityCommandDeps, portal: PortalRecord) -> int:
    if deps.on_denied is None:
        return 0
    try:
        return await deps.on_denied(portal)
    except Exception as e:  # denied all the same: they are no longer used here
        log.warning("Bridge-made identities did not leave portal %d: %s", portal.id, e)
        return 0


async def _status(made: MadeIdentities, mxid: str) -> str:
    if not made.settings.enabled:
        return "Bridge-made Session identities are turned off on this bridge."
    mine = made.of(mxid)
    if mine is None:
        return (
            "You have no bridge-made Session identity. With `session-identity on` the bridge "
            "makes one for you, named after your Matrix name and with your avatar; it posts "
            "as you in the rooms whose admin allowed it (`identities allow`)."
        )
    state = "on" if await made.is_on(mxid) else "off"
    return f"Your bridge-made Session identity `{mine.session_id}` is {state}."


async def _portal_status(made: MadeIdentities, portal: PortalRecord) -> str:
    if await made.allowed(portal):
        return "Bridge-made Session identities are allowed in this room (`identities deny`)."
    return (
        "Bridge-made Session identities are not allowed in this room: users without a "
        "Session login are relayed. A room admin can change that with `identities allow`."
    )
