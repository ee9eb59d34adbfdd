"""Direct messages into Matrix (Session → Matrix) for direct-chat portals.

Each Session account's client delivers its events one at a time, in swarm order, and
acknowledges one only after :meth:`DirectInbound.handle` returned (docs/architecture.md §4). Dedup:
a
visible message is keyed by its swarm hash (one mapping per part: the first file carrying the
text as its caption, or the text, then each other file); every other item by
``dm:<account>:<hash>`` in ``inbound_dedup``, claimed after its effect. Targets of quotes,
reactions, unsends and read receipts are found by (author, sent timestamp). Matrix sends use
transaction ids derived from the hash, so a re-delivery after a crash between the send and the
commit returns the first event instead of a duplicate. A visible message for a chat whose owner
has left its room invites them back first (:mod:`bridge.core.direct.rejoin`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, RoomID

from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, caption_parts
from bridge.core.convert.mentions import mentioned_session_ids
from bridge.core.convert.text_to_matrix import (
    disappearing_notice,
    session_text_to_content,
    with_reply,
)
from bridge.core.direct.accounts import Account
from bridge.core.direct.chats import DirectChats
from bridge.core.direct.media import (
    attachment_content,
    attachment_failed_notice,
    attachment_name,
    human_size,
)
from bridge.core.direct.rejoin import bring_back_owner
from bridge.core.ghosts import GhostHandle, GhostManager, GhostProfile
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import mention_resolver
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.messages import MessageRepo
from bridge.matrix.reads import member_display_name
from bridge.matrix.send import (
    reaction_content,
    redact_quietly,
)
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent, SwarmGapEvent
from bridge.session.errors import SessionError
from bridge.session.messages import (
    Attachment,
    DisappearingSettings,
    MessageRequestResponse,
    Reaction,
    ReactionAction,
    ReadReceipt,
    Typing,
    Unsend,
    VisibleMessage,
)
from bridge.session.netguard import DestinationRefused

log = logging.getLogger("bridge.core.direct.inbound")

TYPING_TIMEOUT_MS = 20_000


class DirectInbound:
    """Turns the direct messages of every running Session account into Matrix events."""

    def __init__(
        self,
        *,
        chats: DirectChats,
        ghosts: GhostManager,
        messages: MessageRepo,
        cursors: CursorRepo,
        own_ids: OwnSessionIds,
        portal_lock: Callable[[int], Any],
        bot: IntentAPI,
    ) -> None:
        self._bot = bot
        self._chats = chats
        self._ghosts = ghosts
        self._messages = messages
        self._cursors = cursors
        self._own_ids = own_ids
        self._portal_lock = portal_lock

    async def handle(self, account: Account, client: SessionClient, event: ClientEvent) -> None:
        """Bridge one event of ``account``; unsupported ones are logged in one line."""
        if isinstance(event, SwarmGapEvent):
            log.warning("%s: a swarm node lost our cursor; messages may be missing", account)
            return
        if event.is_sync or event.from_this_client:
            # A copy of something this identity sent (from here or another device).
            log.debug("Skipping our own message %s", event.hash)
            return
        if account.is_bot:
            await self._chats.auto_reply(client, event)
            return
        content = event.content
        if isinstance(content, VisibleMessage):
            await self._handle_visible(account, client, event, content)
            return
        peer = event.sender.value
        portal = await self._chats.existing(account.session_id, peer)
        if isinstance(content, MessageRequestResponse):
            await self._ghosts.ensure(peer, GhostProfile.from_session(content.profile))
            log.info("%s accepted the message request of %s", peer[:10], account.session_id[:10])
            return
        if portal is None:
            log.info("%s from %s with no direct chat: not bridged", _kind(event), peer[:10])
            return
        async with self._portal_lock(portal.id):
            await self._handle_other(account, portal, event)

    async def _handle_other(
        self, account: Account, portal: PortalRecord, event: DirectMessageEvent
    ) -> None:
        content, peer = event.content, event.sender.value
        if isinstance(content, Typing):
            await self._handle_typing(portal, peer, content)
            return
        key = f"dm:{account.session_id}:{event.hash}"
        if await self._cursors.is_processed(key):
            return
        if isinstance(content, Reaction):
            await self._handle_reaction(portal, peer, event.hash, content)
        elif isinstance(content, Unsend):
            await self._handle_unsend(portal, peer, content)
        elif isinstance(content, ReadReceipt):
            await self._handle_receipt(account, portal, peer, content)
        elif isinstance(content, DisappearingSettings):
            ghost = await self._ghosts.ensure(peer)
            notice = disappearing_notice(
                content.mode, content.timer_seconds, ghost.record.displayname
            )
            await self._send(ghost.intent, portal, notice, f"{event.hash}:notice", event.timestamp)
        else:
            # Control messages (screenshots, calls...) are logged, not shown.
            log.info("Session %s from %s not bridged", _kind(event), peer[:10])
        await self._cursors.claim_inbound(key, portal_id=portal.id)

    # --- visible messages -------------------------------------------------------------------

    async def _handle_visible(
        self,
        account: Account,
        client: SessionClient,
        event: DirectMessageEvent,
        message: VisibleMessage,
    ) -> None:
        peer = event.sender.value
        profile = GhostProfile.from_session(message.profile)
        portal = await self._chats.ensure_portal(account, peer, profile)
        async with self._portal_lock(portal.id):
            key = f"dm:{account.session_id}:{event.hash}"
            if await self._cursors.is_processed(key):
                return
            ghost = await self._ghosts.ensure(peer, profile)
            await self._chats.ensure_accepted(client, portal, peer)
            parts = await self._parts(client, portal, message, ghost)
            if not parts:
                log.info("Empty direct message %s not bridged", event.hash)
                return
            if account.owner_mxid is not None:
                await bring_back_owner(self._bot, ghost, portal, account.owner_mxid, event.hash)
            for index, part in enumerate(parts):
                if await self._messages.get_by_session_key(portal.id, event.hash, index):
                    continue
                event_id = await self._send(
                    ghost.intent, portal, part, f"{event.hash}:{index}", event.timestamp
                )
                await self._messages.add_message(
                    portal.id,
                    str(event_id),
                    event.hash,
                    part=index,
                    timestamp=event.timestamp,
                    sender_session_id=peer,
                )
            await self._cursors.claim_inbound(key, portal_id=portal.id)

    async def _parts(
        self,
        client: SessionClient,
        portal: PortalRecord,
        message: VisibleMessage,
        ghost: GhostHandle,
    ) -> list[dict[str, Any]]:
        """The Matrix events of a visible message: the text as the first file's caption
        (MSC2530) or as an event of its own, then the files; the first replies to the quote."""
        text = await self._text_content(portal, message.body, ghost) if message.body else None
        files = [await self._attachment(client, ghost, a) for a in message.attachments]
        parts = caption_parts(text, files)
        if parts and message.quote is not None:
            parts[0] = await self._with_quote(portal, message, parts[0], ghost)
        return parts

    async def _text_content(
        self, portal: PortalRecord, body: str, ghost: GhostHandle
    ) -> dict[str, Any]:
        """Matrix content for Session ``body``: a mentioned login becomes a pill of its Matrix
        owner with their name in the chat, any other Session id a pill of its ghost."""
        room_id = str(portal.mxid)

        async def name(mxid: str) -> str:
            return await member_display_name(ghost.intent, room_id, mxid)

        resolve = await mention_resolver(
            body,
            ghosts=self._ghosts,
            owners=self._own_ids.owners(mentioned_session_ids(body), None),
            member_name=name,
        )
        return session_text_to_content(body, resolve, sender_mxid=ghost.mxid)

    async def _with_quote(
        self,
        portal: PortalRecord,
        message: VisibleMessage,
        content: dict[str, Any],
        ghost: GhostHandle,
    ) -> dict[str, Any]:
        quote = message.quote
        assert quote is not None
        target = await self._messages.find_by_author_time(portal.id, quote.author, quote.timestamp)
        if target is None:
            log.info("Quoted message %s@%d is not bridged", quote.author[:10], quote.timestamp)
            return content
        replied = target.sender_mxid or (
            self._ghosts.mxid_for(target.sender_session_id) if target.sender_session_id else None
        )
        return with_reply(content, target.mxid, replied_mxid=replied, sender_mxid=ghost.mxid)

    async def _attachment(
        self, client: SessionClient, ghost: GhostHandle, attachment: Attachment
    ) -> dict[str, Any]:
        if attachment.size is not None and attachment.size > MAX_SESSION_FILE_BYTES:
            return attachment_failed_notice(
                attachment, f"it is too large ({human_size(attachment.size)})"
            )
        try:
            data = await client.download_attachment(attachment)
        except DestinationRefused as e:
            log.warning("Attachment %s not fetched: %s", attachment_name(attachment), e)
            return attachment_failed_notice(
                attachment, "it is not on a Session file server this bridge downloads from"
            )
        except SessionError as e:
            log.warning("Attachment %s not bridged: %s", attachment_name(attachment), e)
            return attachment_failed_notice(attachment, "it could not be downloaded")
        try:
            mxc = await ghost.intent.upload_media(
                data,
                mime_type=attachment.content_type or "application/octet-stream",
                filename=attachment_name(attachment),
            )
        except MatrixRequestError as e:
            if e.http_status == 413:
                return attachment_failed_notice(
                    attachment,
                    f"it is larger than this Matrix server accepts ({human_size(len(data))})",
                )
            raise
        return attachment_content(attachment, str(mxc), len(data))

    # --- other items ------------------------------------------------------------------------

    async def _handle_reaction(
        self, portal: PortalRecord, peer: str, hash_: str, reaction: Reaction
    ) -> None:
        target = await self._messages.find_by_author_time(
            portal.id, reaction.target_author, reaction.target_timestamp
        )
        if target is None:
            log.info("Reaction from %s to a message that is not bridged", peer[:10])
            return
        ghost = await self._ghosts.ensure(peer)
        existing = await self._messages.find_reaction(target.id, peer, reaction.emoji)
        if reaction.action == ReactionAction.REMOVE:
            if existing is not None:
                await self._redact(ghost.intent, portal, existing.mxid)
                await self._messages.remove_reaction(existing.id)
            return
        if existing is not None:
            return
        event_id = await send_to_portal(
            ghost.intent,
            portal,
            reaction_content(target.mxid, reaction.emoji),
            origin="dm",
            key=f"{hash_}:react",
            event_type=EventType.REACTION,
        )
        await self._messages.add_reaction(
            portal.id, str(event_id), target.id, peer, reaction.emoji
        )

    async def _handle_unsend(self, portal: PortalRecord, peer: str, unsend: Unsend) -> None:
        if unsend.target_author != peer:
            log.warning("%s tried to delete a message of %s", peer[:10], unsend.target_author[:10])
            return
        target = await self._messages.find_by_author_time(portal.id, peer, unsend.target_timestamp)
        if target is None or target.session_key is None:
            return
        ghost = await self._ghosts.ensure(peer)
        for part in await self._messages.get_parts(portal.id, target.session_key):
            await self._redact(ghost.intent, portal, part.mxid)

    async def _handle_receipt(
        self, account: Account, portal: PortalRecord, peer: str, receipt: ReadReceipt
    ) -> None:
        latest = None
        for timestamp in receipt.timestamps:
            record = await self._messages.find_by_author_time(
                portal.id, account.session_id, timestamp
            )
            if record is not None and (latest is None or record.timestamp > latest.timestamp):
                latest = record
        if latest is None or portal.mxid is None:
            return
        ghost = await self._ghosts.ensure(peer)
        await ghost.intent.send_receipt(RoomID(portal.mxid), EventID(latest.mxid))

    async def _handle_typing(self, portal: PortalRecord, peer: str, typing: Typing) -> None:
        if time.time() * 1000 - typing.timestamp > TYPING_TIMEOUT_MS or portal.mxid is None:
            return  # an old indicator, re-read after a restart
        ghost = await self._ghosts.ensure(peer)
        timeout = TYPING_TIMEOUT_MS if typing.started else 0
        try:
            await ghost.intent.set_typing(RoomID(portal.mxid), timeout=timeout)
        except MatrixRequestError as e:
            log.info("Typing of %s not shown: %s", peer[:10], e)

    # --- Matrix -----------------------------------------------------------------------------

    async def _redact(self, intent: IntentAPI, portal: PortalRecord, event_id: str) -> None:
        assert portal.mxid is not None
        await redact_quietly(intent, portal.mxid, event_id, "Deleted in Session")

    async def _send(
        self,
        intent: IntentAPI,
        portal: PortalRecord,
        content: dict[str, Any],
        purpose: str,
        timestamp: int,
    ) -> EventID:
        return await send_to_portal(
            intent, portal, content, origin="dm", key=purpose, timestamp=timestamp
        )


def _kind(event: DirectMessageEvent) -> str:
    return type(event.content).__name__
