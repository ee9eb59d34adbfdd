"""Matrix edits, reactions and redactions into community rooms (Matrix → Session).

* An edit (``m.replace``) of a message that the same Matrix user sent to Session becomes a
  community edit (docs/session-protocol.md §5.6), made by the identity that posted it: their login,
  or the bot for a relayed message (then re-formatted with the relay template). Session apps
  keep the first text of a community post (desktop de-duplicates posts by author and time and
  never applies the server's edit), so the edit is also posted as a new message marked
  :data:`EDIT_MARK` and quoting the original, as direct chats do; clients that show server
  edits see both (README, Edits).
* A redaction of such a message becomes a community delete. Only the original author may do
  that (docs/architecture.md §5): a moderator redacting someone else's message is told it was
  removed on
  Matrix only.
* An ``m.reaction`` becomes a community reaction (§5.7) of the user's login, or of their
  bridge-made identity where it posts for them (docs/migration.md §7). Relayed users
  (no login, relay on) react through the bot's identity: the bot holds one reaction per emoji
  and message, kept while at least one relayed Matrix user still has that reaction, and removed
  when the last of them takes theirs back. Redacting a reaction removes it the same way.

Each becomes an outbox row; the target is resolved again when the row is delivered, because a
reaction or redaction can follow a message still waiting in the outbox.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from mautrix.types import MessageEvent, ReactionEvent, RedactionEvent

from bridge.core.community.actors import CommunityActors, call_server
from bridge.core.community.payloads import EditPayload, ReactPayload, RedactPayload
from bridge.core.convert.matrix_to_text import strip_unsafe
from bridge.core.portal.events import NoLogin, Refused
from bridge.core.portal.outbox import Deliver, PermanentFailure, TemporaryFailure
from bridge.core.portal.outgoing_text import EDIT_MARK
from bridge.db.records import MessageRecord, OutboxRecord, PortalRecord, ReactionRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.session.messages import Quote, VisibleMessage
from bridge.session.sent_clock import SentClock
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.errors import CommunityNotFound

log = logging.getLogger("bridge.core.community.relations")

EDIT_KIND = "sogs_edit"
MARK_CHECK = 100  # how many recent posts a retry searches for its marked post
REACT_KIND = "sogs_react"
REDACT_KIND = "sogs_redact"
RELAY_PREFIX = "@"  # reaction rows of relayed users are keyed by their mxid, not a Session id


# mxid → whether that user may be relayed (at least the relay level; README, Permissions).
MayRelay = Callable[[str], bool]


def outbox_dedup_key(event_id: str) -> str:
    """The outbox dedup key of a Matrix event: each event queues at most one row."""
    return f"mx-outbox:{event_id}"


def valid_reaction(key: str) -> bool:
    """Whether a Matrix reaction key can be a community reaction: 1 to 12 code points, no
    ``/`` (it is a path segment, §5.7), no control characters and no bidi overrides."""
    safe = strip_unsafe(key) == key and all(ord(c) >= 0x20 for c in key)
    return 1 <= len(key) <= 12 and "/" not in key and safe


def is_relayed_reaction(reaction: ReactionRecord) -> bool:
    """Reactions of relayed Matrix users are recorded under their mxid."""
    return reaction.sender.startswith(RELAY_PREFIX)


class CommunityRelations:
    """Edits, reactions and redactions from Matrix: queued when seen, delivered in order."""

    def __init__(
        self,
        *,
        actors: CommunityActors,
        messages: MessageRepo,
        outbox: OutboxRepo,
        relay_template: str,
        portal_lock: Callable[[int], Any],
        may_relay: MayRelay,
        sent_clock: SentClock,
    ) -> None:
        self._actors = actors
        self._sent_clock = sent_clock
        self._messages = messages
        self._outbox = outbox
        self._relay_template = relay_template
        self._portal_lock = portal_lock
        self._may_relay = may_relay

    def deliverers(self) -> dict[str, Deliver]:
        """The outbox deliverers of edits, reactions and redactions."""
        return {
            EDIT_KIND: self.deliver_edit,
            REACT_KIND: self.deliver_reaction,
            REDACT_KIND: self.deliver_redaction,
        }

    async def _enqueue(
        self,
        portal: PortalRecord,
        kind: str,
        payload: EditPayload | ReactPayload | RedactPayload,
        event_id: str,
        login_id: int | None = None,
    ) -> None:
        await self._outbox.enqueue_once(
            outbox_dedup_key(event_id),
            portal.id,
            kind,
            payload.to_json(),
            login_id=login_id,
            matrix_event_id=event_id,
        )

    # --- at event time -----------------------------------------------------------------------

    async def _require_relay_level(self, sender: str, what: str) -> None:
        """A user without a login acts through the bot only at the relay level or above
        (README, Permissions): without a level, their ``what`` is refused."""
        if await self._actors.login_id_of(sender) is None and not self._may_relay(sender):
            raise NoLogin(what)

    async def handle_edit(
        self, portal: PortalRecord, event: MessageEvent, text: str, name: str
    ) -> None:
        """Queue an edit of the sender's own message, or raise :class:`Refused`."""
        relates = event.content.relates_to
        target = str(relates.event_id) if relates is not None else ""
        sender = str(event.sender)
        record = await self._messages.get_by_mxid(target)
        if record is not None and record.sender_mxid != sender:
            raise Refused("Only your own messages can be edited on Session.")
        if not text.strip():
            raise Refused("An empty edit cannot be sent to Session.")
        await self._require_relay_level(sender, "edit")
        payload = EditPayload(target, text, name or sender, sender)
        await self._enqueue(portal, EDIT_KIND, payload, str(event.event_id))

    async def handle_reaction(self, portal: PortalRecord, event: ReactionEvent) -> None:
        """Queue a reaction on a bridged message, or raise :class:`Refused`."""
        relates = event.content.relates_to
        target, key = str(relates.event_id), str(relates.key or "")
        if await self._messages.get_by_mxid(target) is None:
            log.debug("Reaction %s on an unbridged event not sent", event.event_id)
            return
        if not valid_reaction(key):
            raise Refused(
                "This reaction was not sent to Session: Session reactions are 1 to 12 "
                "characters (an emoji), without `/`."
            )
        sender = str(event.sender)
        login_id = await self._actors.login_id_of(sender)
        if login_id is None:  # the user's bridge-made identity reacts, if it posts here
            made = await self._actors.made_choice(portal, sender, "")
            login_id = made.made.login_id if made is not None else None
        if login_id is None and not (portal.relay_enabled and self._may_relay(sender)):
            raise NoLogin("reaction")
        payload = ReactPayload(target, key, sender)
        await self._enqueue(portal, REACT_KIND, payload, str(event.event_id), login_id)

    async def handle_redaction(self, portal: PortalRecord, event: RedactionEvent) -> None:
        """Queue the removal of a bridged reaction or message, or raise :class:`Refused`."""
        redacts, sender = str(event.redacts), str(event.sender)
        reaction = await self._messages.get_reaction_by_mxid(redacts)
        if reaction is not None:
            if not await self._may_remove_reaction(reaction, sender, portal):
                raise Refused(
                    "Only the person who reacted can remove a reaction on Session; it was "
                    "removed here only."
                )
        elif (message := await self._messages.get_by_mxid(redacts)) is not None:
            if message.sender_mxid != sender:
                raise Refused(
                    "Only the author can delete a message on Session; it was removed here only."
                )
        elif await self._actors.login_id_of(sender) is None and not (
            portal.relay_enabled and self._may_relay(sender)
        ):
            return  # nothing bridged, and nothing this user could have queued
        await self._require_relay_level(sender, "deletion")
        payload = RedactPayload(redacts, sender)
        await self._enqueue(portal, REDACT_KIND, payload, str(event.event_id))

    async def _may_remove_reaction(
        self, reaction: ReactionRecord, sender: str, portal: PortalRecord
    ) -> bool:
        if is_relayed_reaction(reaction):
            return reaction.sender == sender
        return await self._actors.login_identity(sender, reaction.sender, portal) is not None

    # --- delivery ----------------------------------------------------------------------------

    @staticmethod
    def _server_id(record: MessageRecord) -> int:
        if record.session_key is None:
            raise TemporaryFailure("the message is not on Session yet")
        return int(record.session_key)

    async def deliver_edit(self, row: OutboxRecord) -> None:
        """Edit the community post behind the edited Matrix event, then post the marked new
        message that shows the edit on Session (module docstring)."""
        portal = await self._actors.portal_of(row)
        payload = EditPayload.from_json(row.payload)
        record = await self._messages.get_by_mxid(payload.target)
        if record is None:
            raise PermanentFailure("the edited message never reached Session")
        identity, relayed = await self._actors.author_identity(record, payload.sender, portal)
        text = payload.text
        if relayed:
            text = self._relay_template.format(displayname=payload.name, message=text)
        edited = VisibleMessage(
            body=text,
            profile=await self._actors.post_profile(identity, payload.name, relayed=relayed),
            sig_timestamp=self._sent_clock.next_ms(),  # the shared clock (§2.11)
            blocks_community_message_requests=self._actors.blocks(relayed=relayed),
        )
        client, token = self._actors.client(identity, portal)
        async with self._portal_lock(portal.id):
            await call_server(client.edit(token, self._server_id(record), edited))
            await self._messages.bump_edit_count(record.id)
        log.info("Edited community message %s/%s (outbox %d)", token, record.session_key, row.id)
        await self._post_marked(row, payload, record, client, token, edited)

    async def _post_marked(
        self,
        row: OutboxRecord,
        payload: EditPayload,
        record: MessageRecord,
        client: CommunityClient,
        token: str,
        edited: VisibleMessage,
    ) -> None:
        """Post ``EDIT_MARK + text`` quoting the original: Session apps keep a community post's
        first text (desktop de-duplicates by author and time), so this is what they show."""
        author = client.blinded_id.value
        if payload.sent_at is not None and await self._marked_posted(
            client, token, author, payload.sent_at
        ):
            return
        sent_at = payload.sent_at or self._sent_clock.next_ms()
        await self._outbox.set_payload(
            row.id, dataclasses.replace(payload, sent_at=sent_at).to_json()
        )
        quote = None
        if record.sender_session_id is not None:
            quote = Quote(record.timestamp, record.sender_session_id)
        marked = dataclasses.replace(
            edited, body=EDIT_MARK + (edited.body or ""), quote=quote, sig_timestamp=sent_at
        )
        posted = await call_server(client.post(token, marked))
        log.info("Posted the edit of %s/%s as %d", token, record.session_key, posted.id)

    @staticmethod
    async def _marked_posted(
        client: CommunityClient, token: str, author: str, sent_at: int
    ) -> bool:
        """After an interrupted attempt: whether the marked post already reached the room."""
        for found in await call_server(client.recent(token, MARK_CHECK)):
            content = found.content
            if (
                str(found.author) == author
                and isinstance(content, VisibleMessage)
                and content.sig_timestamp == sent_at
            ):
                return True
        return False

    async def deliver_reaction(self, row: OutboxRecord) -> None:
        """React on the community post behind the Matrix event reacted to."""
        portal = await self._actors.portal_of(row)
        payload = ReactPayload.from_json(row.payload)
        record = await self._messages.get_by_mxid(payload.target)
        if record is None:
            log.info("Outbox %d: the reacted message is gone; nothing to do", row.id)
            return
        identity = await self._actors.identity_of(row)
        client, token = self._actors.client(identity, portal)
        emoji = payload.emoji
        async with self._portal_lock(portal.id):
            await call_server(client.react(token, self._server_id(record), emoji))
            relayed = row.login_id is None
            sender = payload.sender if relayed else self._actors.blinded(identity, portal)
            await self._messages.add_reaction(
                portal.id, row.matrix_event_id or f"outbox:{row.id}", record.id, sender, emoji
            )

    async def deliver_redaction(self, row: OutboxRecord) -> None:
        """Remove the reaction or delete the post behind the redacted Matrix event."""
        portal = await self._actors.portal_of(row)
        payload = RedactPayload.from_json(row.payload)
        redacts, sender = payload.redacts, payload.sender
        reaction = await self._messages.get_reaction_by_mxid(redacts)
        if reaction is not None:
            await self._unreact(portal, reaction, sender)
            return
        message = await self._messages.get_by_mxid(redacts)
        if message is not None:
            await self._delete(portal, message, sender)
            return
        log.debug("Outbox %d: redacted event %s was never bridged", row.id, redacts)

    async def _unreact(self, portal: PortalRecord, reaction: ReactionRecord, sender: str) -> None:
        target = await self._messages.get_by_id(reaction.target_message_id)
        if target is None:
            await self._messages.remove_reaction(reaction.id)
            return
        if is_relayed_reaction(reaction):
            if reaction.sender != sender:
                raise PermanentFailure("only the person who reacted can remove the reaction")
            others = [
                r
                for r in await self._messages.list_reactions(target.id)
                if r.id != reaction.id and r.emoji == reaction.emoji and is_relayed_reaction(r)
            ]
            identity = None if others else self._actors.bot_identity
        else:
            identity = await self._actors.login_identity(sender, reaction.sender, portal)
            if identity is None:
                raise PermanentFailure("only the person who reacted can remove the reaction")
        async with self._portal_lock(portal.id):
            if identity is not None:
                client, token = self._actors.client(identity, portal)
                await call_server(client.unreact(token, self._server_id(target), reaction.emoji))
            await self._messages.remove_reaction(reaction.id)

    async def _delete(self, portal: PortalRecord, message: MessageRecord, sender: str) -> None:
        identity, _ = await self._actors.author_identity(message, sender, portal)
        client, token = self._actors.client(identity, portal)
        async with self._portal_lock(portal.id):
            try:
                await call_server(client.delete(token, self._server_id(message)))
            except PermanentFailure as e:
                if not isinstance(e.__cause__, CommunityNotFound):
                    raise
                log.info("Community message %s/%s was already gone", token, message.session_key)
        log.info("Deleted community message %s/%s", token, message.session_key)
