"""Community messages into Matrix (Session → Matrix) for community portals.

Dedup (docs/architecture.md §4): a new message is keyed by its server message id; an edit or
deletion by
(id, seqno), since the server gives every change a new seqno. The Matrix send uses a
transaction id derived from the same key, so a re-delivery after a crash between the send and
the database commit returns the first event instead of a duplicate.

A post becomes one Matrix event per part: one media event per attachment
(:mod:`bridge.core.community.media`), the first carrying the post's text as its caption
(MSC2530), or the text alone when there is no file to carry it. Edits replace the text, or the
first file's caption; deletions redact every part. Reactions, on full messages and in
reaction-only updates, are synced by :mod:`bridge.core.community.reactions`. Posts of our own
identities (Matrix users' logins, the bot's relay) are never bridged back; only their deletion
on Session (e.g. by a moderator) is, by the bot. Session control messages (anything but a
visible message) are logged, not shown. A mention of a login's id (blinded or not) becomes a
pill of its Matrix owner (:mod:`bridge.core.pills`). Whispers (posts the server shows only to
one user and/or the moderators, docs/session-protocol.md §5.5) are dropped with one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import EventID, RoomID

from bridge.core.community.media import CommunityMediaIn
from bridge.core.community.reactions import CommunityReactionsIn
from bridge.core.community.service import parse_community_key
from bridge.core.convert.media import caption_parts, with_caption
from bridge.core.convert.text_to_matrix import as_edit, with_reply
from bridge.core.ghosts import GhostHandle, GhostManager, GhostProfile
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import session_text_in_room
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import MessageRecord, PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.messages import MessageRepo
from bridge.matrix.send import redact_quietly
from bridge.session.messages import VisibleMessage
from bridge.session.sogs.models import CommunityMessage, ReactionUpdate

log = logging.getLogger("bridge.core.community.inbound")


class CommunityInbound:
    """Turns community items into Matrix events sent by ghosts."""

    def __init__(
        self,
        *,
        ghosts: GhostManager,
        messages: MessageRepo,
        cursors: CursorRepo,
        is_own_identity: Callable[[bytes, str], bool],
        reactions: CommunityReactionsIn,
        media: CommunityMediaIn,
        bot: IntentAPI,
        own_ids: OwnSessionIds,
    ) -> None:
        self._ghosts = ghosts
        self._own_ids = own_ids
        self._messages = messages
        self._cursors = cursors
        self._is_own_identity = is_own_identity
        self._reactions = reactions
        self._media = media
        self._bot = bot

    async def handle(self, portal: PortalRecord, item: CommunityMessage | ReactionUpdate) -> None:
        """Bridge one item; bad or unsupported ones are logged in one line and dropped."""
        if portal.mxid is None:
            return
        if isinstance(item, ReactionUpdate):
            await self._reactions.sync(portal, item.id, item.seqno, item.reactions)
            return
        if item.whisper:
            # Meant for one user and/or the moderators (the bot sees it as a moderator or as
            # its target): never for the public room. One line, without the content (README).
            whom = "the moderators" if item.whisper_mods else "one user"
            log.info("Community whisper %s/%d to %s not bridged", item.room, item.id, whom)
            return
        existing = await self._messages.get_by_session_key(portal.id, str(item.id))
        if item.deleted:
            await self._handle_delete(portal, item)
            return
        if item.error is not None:
            log.warning("Dropping community message %s/%d: %s", item.room, item.id, item.error)
        elif not isinstance(item.content, VisibleMessage):
            kind = type(item.content).__name__
            log.info("Community message %s/%d of kind %s not bridged", item.room, item.id, kind)
        elif existing is None:
            await self._handle_new(portal, item, item.content)
        elif item.edited is not None:
            await self._handle_edit(portal, item, item.content, existing)
        if existing is None and not item.reactions:
            return  # not bridged before this item, no reactions now: nothing to bring over
        await self._reactions.sync(portal, item.id, item.seqno, item.reactions)

    async def _content(self, portal: PortalRecord, body: str, sender_mxid: str) -> dict[str, Any]:
        """Matrix content for Session ``body``: a mentioned login (its ``05…`` id or its blinded
        id on this server) becomes a pill of its Matrix owner, any other id its ghost's pill."""
        server, _ = parse_community_key(portal.session_key)
        return await session_text_in_room(
            body,
            room_id=str(portal.mxid),
            sender_mxid=sender_mxid,
            reader=self._bot,
            ghosts=self._ghosts,
            owners=lambda ids: self._own_ids.owners(ids, server.pubkey),
        )

    def _is_own(self, portal: PortalRecord, author: str) -> bool:
        server, _ = parse_community_key(portal.session_key)
        return self._is_own_identity(server.pubkey, author)

    async def _handle_new(
        self, portal: PortalRecord, item: CommunityMessage, message: VisibleMessage
    ) -> None:
        author = str(item.author) if item.author else ""
        if self._is_own(portal, author):
            # A Matrix user's post (or a relayed one) coming back: it already has its mapping
            # unless the bridge crashed between posting and recording; never bridge it back.
            log.debug("Skipping our own post %s/%d", item.room, item.id)
            return
        ghost = await self._ghosts.ensure(author, GhostProfile.from_session(message.profile))
        content = await self._content(portal, message.body or "", ghost.mxid)
        if not content["body"] and not message.attachments:
            log.info("Empty community message %s/%d not bridged", item.room, item.id)
            return
        files = [
            await self._media.content(portal, attachment, index, ghost.intent)
            for index, attachment in enumerate(message.attachments)
        ]
        parts = caption_parts(content if content["body"] else None, files)
        if message.quote is not None:
            quoted = await self._find_quoted(portal, message)
            if quoted is not None:
                parts[0] = with_reply(
                    parts[0], quoted.mxid, replied_mxid=quoted.sender_mxid, sender_mxid=ghost.mxid
                )
        await self._send_parts(portal, item, message, ghost, author, parts)

    async def _send_parts(
        self,
        portal: PortalRecord,
        item: CommunityMessage,
        message: VisibleMessage,
        ghost: GhostHandle,
        author: str,
        parts: list[dict[str, Any]],
    ) -> None:
        if parts[0].get("msgtype") != "m.text":
            await self._cursors.claim_inbound(
                _file_first_key(portal, item.id), portal_id=portal.id
            )
        for part, content in enumerate(parts):
            purpose = f"new:{item.id}" if part == 0 else f"new:{item.id}:{part}"
            event_id = await self._send(ghost.intent, portal, content, purpose, item)
            await self._messages.add_message(
                portal.id,
                str(event_id),
                str(item.id),
                # The sent timestamp is how quotes and reactions name this message later.
                timestamp=message.sig_timestamp or int(item.posted * 1000),
                part=part,
                sender_session_id=author,
            )

    async def _find_quoted(
        self, portal: PortalRecord, message: VisibleMessage
    ) -> MessageRecord | None:
        # Community quotes name the quoted post by (author, sent timestamp) (§2.5); the bridge
        # keys community posts by server id, so look up by author and time.
        quote = message.quote
        if quote is None:
            return None
        return await self._messages.find_by_author_time(portal.id, quote.author, quote.timestamp)

    async def _handle_edit(
        self,
        portal: PortalRecord,
        item: CommunityMessage,
        message: VisibleMessage,
        existing: MessageRecord,
    ) -> None:
        author = str(item.author) if item.author else ""
        if self._is_own(portal, author):
            return  # an edit made from Matrix: the Matrix side already shows it
        key = f"sogs-edit:{portal.id}:{item.id}:{item.seqno}"
        if await self._cursors.is_processed(key):
            return
        ghost = await self._ghosts.ensure(author, GhostProfile.from_session(message.profile))
        new = await self._content(portal, message.body or "", ghost.mxid)
        if not new["body"]:
            log.info("Edit of %s/%d without text not bridged", item.room, item.id)
        elif await self._cursors.is_processed(_file_first_key(portal, item.id)):
            # The post starts with a file: its text is that file's caption.
            edit = await self._caption_edit(ghost.intent, portal, existing.mxid, new)
            if edit is None:
                log.info("Edit of file post %s/%d not bridged", item.room, item.id)
            else:
                await self._send(ghost.intent, portal, edit, key, item)
        else:
            await self._send(ghost.intent, portal, as_edit(new, existing.mxid), key, item)
        await self._cursors.claim_inbound(key, portal_id=portal.id)

    async def _caption_edit(
        self, intent: IntentAPI, portal: PortalRecord, event_id: str, new: dict[str, Any]
    ) -> dict[str, Any] | None:
        """An edit giving the file event ``event_id`` the caption ``new`` (MSC2530); ``None``
        if that event is no file (a notice about a file that was not bridged) or unreadable."""
        try:
            event = await intent.get_event(RoomID(str(portal.mxid)), EventID(event_id))
        except MatrixError as e:
            log.warning("Could not read %s to edit its caption: %s", event_id, e)
            return None
        original = dict(event.content.serialize())
        # Drop the old caption: the edited post's text is the whole new caption.
        original["body"] = original.get("filename") or original.get("body")
        captioned = with_caption(original, new)
        return None if captioned is None else as_edit(captioned, event_id)

    async def _handle_delete(self, portal: PortalRecord, item: CommunityMessage) -> None:
        if portal.mxid is None:
            return
        key = f"sogs-delete:{portal.id}:{item.id}"
        if await self._cursors.is_processed(key):
            return
        parts = await self._messages.get_parts(portal.id, str(item.id))
        if not parts:
            return
        sender = parts[0].sender_session_id
        own = sender is None or self._is_own(portal, sender)
        # Our own posts deleted on Session (by us or a moderator) are redacted by the bot.
        intent = self._bot if own or sender is None else (await self._ghosts.ensure(sender)).intent
        for part in parts:
            await redact_quietly(intent, portal.mxid, part.mxid, "Deleted")
        await self._cursors.claim_inbound(key, portal_id=portal.id)

    async def _send(
        self,
        intent: IntentAPI,
        portal: PortalRecord,
        content: dict[str, Any],
        purpose: str,
        item: CommunityMessage,
    ) -> EventID:
        timestamp = int((item.edited or item.posted) * 1000)
        return await send_to_portal(
            intent, portal, content, origin="sogs", key=purpose, timestamp=timestamp
        )


def _file_first_key(portal: PortalRecord, message_id: int) -> str:
    """Marks a post whose first Matrix event is a file, not text."""
    return f"sogs-file-first:{portal.id}:{message_id}"
