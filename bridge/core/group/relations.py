"""Matrix edits, reactions and redactions into group portals (Matrix → Session).

* Session has no edits: a Matrix edit goes out as direct chats send it, a new message marked
  :data:`EDIT_MARK` that quotes the original. Only the author's own messages are edited.
* An ``m.reaction`` becomes a Session reaction of the user's login, or of the bot for relayed
  users: the bot holds one reaction per emoji and message while at least one relayed Matrix user
  still has it. Redacting the reaction removes it the same way.
* A redaction of one's own message deletes it on Session: an ``Unsend`` and a
  ``DeleteMemberContent`` naming the storage hash the message was stored under (kept in the
  ``message`` table when it was sent, docs/groups-v2.md §7.8), by the identity that sent it.
  Redacting someone else's message is refused: it was removed on Matrix only.

Each becomes an outbox row; the targets are resolved again when the row is delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mautrix.types import MessageEvent, ReactionEvent, RedactionEvent

from bridge.core.convert.matrix_to_text import strip_unsafe
from bridge.core.group.actors import GroupActors
from bridge.core.group.payloads import GroupPayload
from bridge.core.portal.events import Refused
from bridge.core.portal.ops import ReactionOp, RedactionOp, TextOp
from bridge.core.portal.outbox import PermanentFailure
from bridge.core.portal.outgoing_text import EDIT_MARK
from bridge.db.records import MessageRecord, OutboxRecord, PortalRecord, ReactionRecord
from bridge.db.repos.messages import MessageRepo
from bridge.session.messages import (
    GroupDeleteMemberContent,
    Message,
    Quote,
    Reaction,
    ReactionAction,
    Unsend,
)

log = logging.getLogger("bridge.core.group.relations")

RELAY_PREFIX = "@"  # reactions of relayed users are recorded under their mxid


def valid_reaction(key: str) -> bool:
    """Whether a Matrix reaction key can be a Session reaction: 1 to 12 code points (an
    emoji), no control characters and no bidi overrides."""
    safe = strip_unsafe(key) == key and all(ord(c) >= 0x20 for c in key)
    return 1 <= len(key) <= 12 and safe


def is_relayed(reaction: ReactionRecord) -> bool:
    return reaction.sender.startswith(RELAY_PREFIX)


def quote_of(record: MessageRecord | None) -> Quote | None:
    """How Session names a mapped message in a quote: (author, sent timestamp)."""
    if record is None or record.sender_session_id is None:
        return None
    return Quote(record.timestamp, record.sender_session_id)


class GroupRelations:
    """Edits, reactions and redactions: checked when seen, delivered in order."""

    def __init__(
        self,
        *,
        actors: GroupActors,
        messages: MessageRepo,
        portal_lock: Callable[[int], Any],
    ) -> None:
        self._actors = actors
        self._messages = messages
        self._portal_lock = portal_lock

    # --- at event time -----------------------------------------------------------------------

    async def edit(self, event: MessageEvent, text: str) -> TextOp:
        """The message an edit sends: the new text, marked, quoting the original."""
        relates = event.content.relates_to
        target = str(relates.event_id) if relates is not None else ""
        record = await self._messages.get_by_mxid(target)
        if record is not None and record.sender_mxid != str(event.sender):
            raise Refused("Only your own messages can be edited on Session.")
        return TextOp(EDIT_MARK + text, quote_of(record), edit_of=target)

    async def edited_quote(self, op: TextOp, sender: str) -> Quote | None:
        """At delivery: the quote of an edit whose original was still queued when it came."""
        if op.quote is not None or op.edit_of is None:
            return op.quote
        record = await self._messages.get_by_mxid(op.edit_of)
        if record is not None and record.sender_mxid != sender:
            raise PermanentFailure("only your own messages can be edited on Session")
        return quote_of(record)

    async def reaction(self, event: ReactionEvent) -> ReactionOp | None:
        """The reaction to queue (its target is found at delivery: it may still be queued
        itself), None for a reaction on a Matrix-only event, or Refused."""
        relates = event.content.relates_to
        target, key = str(relates.event_id), str(relates.key or "")
        record = await self._messages.get_by_mxid(target)
        if record is not None and record.sender_session_id is None:
            log.debug("Reaction %s on an unbridged event not sent", event.event_id)
            return None
        if not valid_reaction(key):
            raise Refused(
                "This reaction was not sent to Session: Session reactions are an emoji "
                "(1 to 12 characters)."
            )
        return ReactionOp(target, key)

    async def redaction(self, event: RedactionEvent) -> RedactionOp:
        """The removal to queue (a target not mapped yet may still be queued: it is resolved
        at delivery), or Refused."""
        redacts, sender = str(event.redacts), str(event.sender)
        reaction = await self._messages.get_reaction_by_mxid(redacts)
        if reaction is not None:
            if not await self._may_unreact(reaction, sender):
                raise Refused(
                    "Only the person who reacted can remove a reaction on Session; it was "
                    "removed here only."
                )
            return RedactionOp(redacts)
        message = await self._messages.get_by_mxid(redacts)
        if message is None:  # Matrix only, or still queued: resolved at delivery
            return RedactionOp(redacts)
        if message.sender_mxid != sender:
            raise Refused(
                "Only the author can delete a message on Session; it was removed here only."
            )
        return RedactionOp(redacts)

    async def _may_unreact(self, reaction: ReactionRecord, sender: str) -> bool:
        if is_relayed(reaction):
            return reaction.sender == sender
        return await self._actors.owns(sender, reaction.sender)

    # --- delivery ----------------------------------------------------------------------------

    async def deliver_reaction(self, row: OutboxRecord) -> None:
        """React, as the row's identity, to the Session message behind the Matrix event."""
        portal = await self._actors.portal_of(row)
        payload = GroupPayload.from_json(row.payload)
        op = payload.op
        if not isinstance(op, ReactionOp):
            raise PermanentFailure("the queued reaction cannot be read")
        target = await self._messages.get_by_mxid(op.target)
        if target is None or target.sender_session_id is None:
            log.info("Outbox %d: the reacted event is not on Session; nothing to do", row.id)
            return
        session_id = await self._actors.session_id_of(row)
        relayed = row.login_id is None
        recorded_as = payload.sender if relayed else session_id
        author, timestamp = target.sender_session_id, target.timestamp
        group = portal.session_key
        client = await self._actors.client_for(session_id, group)

        async def react() -> list[Message]:
            return [Reaction(timestamp, author, op.emoji, ReactionAction.REACT)]

        async with self._portal_lock(portal.id):
            held = relayed and await self._relayed_others(target.id, op.emoji, None)
            if not held:
                await self._actors.send_once(row, payload, client, group, react)
            event_id = row.matrix_event_id or f"outbox:{row.id}"
            await self._messages.add_reaction(
                portal.id, event_id, target.id, recorded_as, op.emoji
            )
        log.info("Reacted in group %s (outbox %d)", group[:10], row.id)

    async def _relayed_others(self, target_id: int, emoji: str, besides: int | None) -> bool:
        """Whether another relayed user has ``emoji`` on the message (the bot's is held)."""
        return any(
            r.id != besides and r.emoji == emoji and is_relayed(r)
            for r in await self._messages.list_reactions(target_id)
        )

    async def deliver_redaction(self, row: OutboxRecord) -> None:
        """Remove the reaction, or delete the message, behind the redacted Matrix event."""
        portal = await self._actors.portal_of(row)
        payload = GroupPayload.from_json(row.payload)
        op = payload.op
        if not isinstance(op, RedactionOp):
            raise PermanentFailure("the queued deletion cannot be read")
        reaction = await self._messages.get_reaction_by_mxid(op.target)
        if reaction is not None:
            await self._unreact(row, payload, portal, reaction)
            return
        message = await self._messages.get_by_mxid(op.target)
        if message is None:
            log.debug("Outbox %d: redacted event %s was never bridged", row.id, op.target)
            return
        await self._unsend(row, payload, portal, message)

    async def _unreact(
        self, row: OutboxRecord, payload: GroupPayload, portal: PortalRecord, r: ReactionRecord
    ) -> None:
        target = await self._messages.get_by_id(r.target_message_id)
        if target is None or target.sender_session_id is None:
            await self._messages.remove_reaction(r.id)
            return
        if is_relayed(r):
            if r.sender != payload.sender:
                raise PermanentFailure("only the person who reacted can remove the reaction")
            session_id = self._actors.bot_session_id()
        elif await self._actors.owns(payload.sender, r.sender):
            session_id = r.sender
        else:
            raise PermanentFailure("only the person who reacted can remove the reaction")
        author, timestamp, emoji = target.sender_session_id, target.timestamp, r.emoji
        group = portal.session_key

        async def removal() -> list[Message]:
            return [Reaction(timestamp, author, emoji, ReactionAction.REMOVE)]

        async with self._portal_lock(portal.id):
            if not (is_relayed(r) and await self._relayed_others(target.id, emoji, r.id)):
                client = await self._actors.client_for(session_id, group)
                await self._actors.send_once(row, payload, client, group, removal)
            await self._messages.remove_reaction(r.id)

    async def _unsend(
        self, row: OutboxRecord, payload: GroupPayload, portal: PortalRecord, m: MessageRecord
    ) -> None:
        if m.sender_mxid != payload.sender or not await self._actors.owns(
            payload.sender, m.sender_session_id
        ):
            raise PermanentFailure("Session only lets the author delete a message")
        assert m.sender_session_id is not None  # owns() says so
        group, timestamp, stored = portal.session_key, m.timestamp, m.session_key
        client = await self._actors.client_for(m.sender_session_id, group)

        async def deletion() -> list[Message]:
            author = client.session_id.value
            out: list[Message] = [Unsend(timestamp, author)]
            if stored:
                out.append(GroupDeleteMemberContent(message_hashes=(stored,)))
            return out

        async with self._portal_lock(portal.id):
            await self._actors.send_once(row, payload, client, group, deletion)
            await self._messages.delete_message(m.id)
        log.info("Deleted a message in group %s (outbox %d)", group[:10], row.id)
