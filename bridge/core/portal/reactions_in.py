"""A Session reaction shown on Matrix, the same in direct chats and group portals: the
reacting member's ghost reacts to the bridged message (once per emoji), and takes its reaction
back when the Session side removes it (docs/matrix-side.md §7)."""

from __future__ import annotations

import logging

from mautrix.types import EventType

from bridge.core.ghosts import GhostManager
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.matrix.send import reaction_content, redact_quietly
from bridge.session.messages import Reaction, ReactionAction

log = logging.getLogger("bridge.core.portal.reactions_in")

__all__ = ["mirror_reaction"]


async def mirror_reaction(
    *,
    messages: MessageRepo,
    ghosts: GhostManager,
    portal: PortalRecord,
    peer: str,
    reaction: Reaction,
    origin: str,
    key: str,
) -> None:
    """Show ``peer``'s ``reaction`` in ``portal``; ``origin`` and ``key`` name the Session item
    for the send's transaction id (:func:`send_to_portal`), so a repeat sends nothing new."""
    target = await messages.find_by_author_time(
        portal.id, reaction.target_author, reaction.target_timestamp
    )
    if target is None:
        log.info("%s reaction from %s to a message that is not bridged", origin, peer[:10])
        return
    existing = await messages.find_reaction(target.id, peer, reaction.emoji)
    ghost = await ghosts.ensure(peer)
    if reaction.action == ReactionAction.REMOVE:
        if existing is not None:
            await redact_quietly(
                ghost.intent, str(portal.mxid), existing.mxid, "Reaction removed in Session"
            )
            await messages.remove_reaction(existing.id)
        return
    if existing is not None:
        return
    event_id = await send_to_portal(
        ghost.intent,
        portal,
        reaction_content(target.mxid, reaction.emoji),
        origin=origin,
        key=key,
        event_type=EventType.REACTION,
    )
    await messages.add_reaction(portal.id, str(event_id), target.id, peer, reaction.emoji)
