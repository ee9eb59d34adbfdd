"""A Session message for a direct chat whose Matrix owner has left its room.

The chat goes on in the same room: the peer's ghost invites the owner back (as a direct chat,
``is_direct``) and the bot says why in the room, before the message is sent there. Current
mautrix bridges do the same (bridgev2 invites a user who left a portal back when a message
for it arrives); the older ones deleted the portal on leave and made a new room for the next
message. Staying in the room keeps the history, and with it the replies and reactions that
name earlier messages, which could not point into another room. A ban is left alone: someone
with power in the room decided it.
"""

from __future__ import annotations

import logging

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError, MNotFound
from mautrix.types import Membership, RoomID, UserID

from bridge.core.ghosts import GhostHandle
from bridge.db.records import PortalRecord
from bridge.matrix.send import derived_txn_id, send_notice

log = logging.getLogger("bridge.core.direct.rejoin")

PRESENT = (Membership.JOIN, Membership.INVITE)


async def owner_membership(bot: IntentAPI, room_id: str, owner: str) -> Membership | None:
    """The owner's membership in the room as the bridge knows it (the state store, kept from
    the room's member events; the homeserver when the store has nothing)."""
    try:
        member = await bot.get_room_member_info(RoomID(room_id), UserID(owner))
    except MNotFound:
        return None
    return member.membership if member is not None else None


async def bring_back_owner(
    bot: IntentAPI, ghost: GhostHandle, portal: PortalRecord, owner: str, cause: str
) -> bool:
    """Invite ``owner`` back into the chat's room if they left it, and tell them why.

    ``cause`` names the Session message (its hash), so that a message handled again after a
    crash sends the notice once. Returns whether the owner was invited. A failure to invite is
    logged: the message is bridged anyway and a later one tries again.
    """
    assert portal.mxid is not None
    try:
        membership = await owner_membership(bot, portal.mxid, owner)
    except MatrixError as e:
        log.warning("Could not read whether %s is in %s: %s", owner, portal.mxid, e)
        return False
    if membership in PRESENT:
        return False
    if membership == Membership.BAN:
        log.info("%s is banned from the direct chat %s; not inviting", owner, portal.mxid)
        return False
    name = ghost.record.displayname or ghost.session_id
    try:
        await ghost.intent.invite_user(
            RoomID(portal.mxid),
            UserID(owner),
            reason=f"{name} wrote again in your chat",
            extra_content={"is_direct": True},
        )
    except MatrixError as e:
        log.warning("Could not invite %s back into %s: %s", owner, portal.mxid, e)
        return False
    log.info("Invited %s back into the direct chat %s (was: %s)", owner, portal.mxid, membership)
    try:
        await send_notice(
            bot,
            portal.mxid,
            f"You had left this chat. {name} wrote again, so you were invited back; their "
            "messages are below.",
            txn_id=derived_txn_id("dm-rejoin", f"{portal.id}:{cause}"),
        )
    except MatrixError as e:
        log.warning("Could not tell %s why they were invited back: %s", owner, e)
    return True
