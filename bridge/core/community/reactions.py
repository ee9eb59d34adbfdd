"""Community reactions into Matrix (Session → Matrix).

The server gives, per message, the current reactions: each emoji with its count and up to N
reactors (``reactors=20`` in the poll, docs/session-protocol.md §5.5/§5.7), both in reaction-only
updates and on full messages. :func:`reaction_changes` compares that with what the reaction
table holds for Session reactors, and the portal then sends each new reaction as an
``m.reaction`` by the reactor's ghost and redacts each one that went away.

Reactions of our own identities (the bot, logged-in Matrix users) are not bridged back: they
came from Matrix. The reactor list is capped, so a recorded reaction is only removed when its
emoji is gone or its list is complete (count ≤ listed reactors) without the reactor; a reaction
beyond the cap is bridged once it enters the list. Dedup is the table's unique
(message, sender, emoji); the send uses a transaction id derived from the item's seqno, so a
re-delivery after a crash returns the first event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, RoomID

from bridge.core.community.relations import is_relayed_reaction
from bridge.core.community.service import parse_community_key
from bridge.core.ghosts import GhostManager
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import PortalRecord, ReactionRecord
from bridge.db.repos.messages import MessageRepo
from bridge.ids import InvalidId
from bridge.matrix.send import reaction_content
from bridge.session.sogs.models import ReactionSummary

log = logging.getLogger("bridge.core.community.reactions")


@dataclass(frozen=True, slots=True)
class ReactionChanges:
    """What to send: ``added`` (reactor, emoji) pairs, and recorded reactions to redact."""

    added: tuple[tuple[str, str], ...]
    removed: tuple[ReactionRecord, ...]


def reaction_changes(
    summaries: Iterable[ReactionSummary],
    recorded: Sequence[ReactionRecord],
    is_own: Callable[[str], bool],
) -> ReactionChanges:
    """Compare the server's reactions on a message with the recorded Session ones.

    ``recorded`` may include reactions that came from Matrix (relayed users' rows keyed by
    mxid, logged-in users' by their own blinded id): those are never removed here.
    """
    listed: dict[str, set[str]] = {}
    complete: dict[str, bool] = {}
    added: list[tuple[str, str]] = []
    have = {(r.sender, r.emoji) for r in recorded}
    for summary in sorted(summaries, key=lambda s: s.index):
        reactors = {r.lower() for r in summary.reactors}
        listed[summary.emoji] = reactors
        complete[summary.emoji] = summary.count <= len(reactors)
        for reactor in summary.reactors:
            pair = (reactor.lower(), summary.emoji)
            if not is_own(pair[0]) and pair not in have and pair not in added:
                added.append(pair)
    removed = []
    for record in recorded:
        if is_relayed_reaction(record) or is_own(record.sender):
            continue
        emoji = record.emoji
        if emoji not in listed or (complete[emoji] and record.sender not in listed[emoji]):
            removed.append(record)
    return ReactionChanges(tuple(added), tuple(removed))


class CommunityReactionsIn:
    """Keeps the ghosts' Matrix reactions in step with a community message's reactions."""

    def __init__(
        self,
        *,
        ghosts: GhostManager,
        messages: MessageRepo,
        is_own_identity: Callable[[bytes, str], bool],
    ) -> None:
        self._ghosts = ghosts
        self._messages = messages
        self._is_own_identity = is_own_identity

    async def sync(
        self,
        portal: PortalRecord,
        message_id: int,
        seqno: int,
        summaries: Sequence[ReactionSummary],
    ) -> None:
        """Bring the reactions on community message ``message_id`` over to Matrix."""
        if portal.mxid is None:
            return
        target = await self._messages.get_by_session_key(portal.id, str(message_id))
        if target is None:
            if summaries:
                log.debug("Reactions on unbridged community message %d ignored", message_id)
            return
        server, _ = parse_community_key(portal.session_key)
        recorded = await self._messages.list_reactions(target.id)
        changes = reaction_changes(
            summaries, recorded, lambda author: self._is_own_identity(server.pubkey, author)
        )
        room = RoomID(portal.mxid)
        for reactor, emoji in changes.added:
            await self._add(portal, target.id, target.mxid, reactor, emoji, seqno)
        for record in changes.removed:
            await self._remove(room, record)

    async def _add(
        self,
        portal: PortalRecord,
        target_id: int,
        target_mxid: str,
        reactor: str,
        emoji: str,
        seqno: int,
    ) -> None:
        try:
            ghost = await self._ghosts.ensure(reactor)
        except InvalidId:
            log.warning("Ignoring a reaction by malformed id %r", reactor[:80])
            return
        try:
            event_id = await send_to_portal(
                ghost.intent,
                portal,
                reaction_content(target_mxid, emoji),
                origin="sogs-react",
                key=f"{target_id}:{reactor}:{emoji}:{seqno}",
                event_type=EventType.REACTION,
            )
        except MatrixRequestError as e:
            if e.errcode == "M_DUPLICATE_ANNOTATION":  # already there (docs/matrix-side.md §2.8)
                log.debug("%s already reacted %s on %s", ghost.mxid, emoji, target_mxid)
                return
            raise
        await self._messages.add_reaction(portal.id, str(event_id), target_id, reactor, emoji)

    async def _remove(self, room: RoomID, record: ReactionRecord) -> None:
        try:
            ghost = await self._ghosts.ensure(record.sender)
            await ghost.intent.redact(room, EventID(record.mxid), reason="Reaction removed")
        except (MatrixRequestError, InvalidId) as e:
            log.warning("Could not redact reaction %s: %s", record.mxid, e)
        await self._messages.remove_reaction(record.id)
