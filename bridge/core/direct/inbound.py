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
from collections.abc import Awaitable, Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, RoomID

from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, caption_parts
from bridge.core.convert.text_to_matrix import (
    disappearing_notice,
    disappearing_notice_text,
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
from bridge.core.direct.timers import ConversationTimers, shorten_after_read
from bridge.core.direct.user_configs import LoginConfigs
from bridge.core.ghosts import GhostHandle, GhostManager, GhostProfile
from bridge.core.own_ids import OwnSessionIds
from bridge.core.pills import session_text_in_room
from bridge.core.portal.reactions_in import mirror_reaction
from bridge.core.portal.rooms import send_to_portal
from bridge.db.records import PortalRecord
from bridge.db.repos.cursors import CursorRepo
from bridge.db.repos.messages import MessageRepo
from bridge.matrix.media import upload_file
from bridge.matrix.send import (
    notice_content,
    redact_quietly,
)
from bridge.session.client import SessionClient
from bridge.session.dm_events import ClientEvent, DirectMessageEvent, SwarmGapEvent
from bridge.session.errors import SessionError
from bridge.session.messages import (
    Attachment,
    DisappearingSettings,
    Expiry,
    ExpiryMode,
    LegacyGroupInvite,
    MessageRequestResponse,
    Reaction,
    ReadReceipt,
    Typing,
    Unsend,
    VisibleMessage,
)
from bridge.session.netguard import DestinationRefused
from bridge.session.subscribers import RetryLater

log = logging.getLogger("bridge.core.direct.inbound")

TYPING_TIMEOUT_MS = 20_000
REQUEST_NOTICE = (
    "This is a message request: this Session user wrote to you first. They will see you as "
    "a contact (and the request disappears from your phone's message requests) when you "
    "reply here or send `accept` in this chat."
)


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
        configs: LoginConfigs | None = None,
        timers: ConversationTimers | None = None,
    ) -> None:
        self._bot = bot
        self._configs = configs
        self._timers = timers
        self._chats = chats
        self._ghosts = ghosts
        self._messages = messages
        self._cursors = cursors
        self._own_ids = own_ids
        self._portal_lock = portal_lock
        #: Told of legacy group invites (session_id, inviter, invite, message hash).
        self.on_legacy_group: (
            Callable[[str, str, LegacyGroupInvite, str], Awaitable[None]] | None
        ) = None

    async def handle(self, account: Account, client: SessionClient, event: ClientEvent) -> None:
        """Bridge one event of ``account``; unsupported ones are logged in one line."""
        if isinstance(event, SwarmGapEvent):
            log.warning("%s: a swarm node lost our cursor; messages may be missing", account)
            return
        if self._timers is not None and not account.is_bot:
            await self._learn_timer(account, event)
        if event.is_sync or event.from_this_client:
            # A copy of something this identity sent (from here or another device).
            log.debug("Skipping our own message %s", event.hash)
            return
        if isinstance(event.content, LegacyGroupInvite):  # not bridged (§2.9): only told
            if self.on_legacy_group is not None:
                await self.on_legacy_group(
                    account.session_id, event.sender.value, event.content, event.hash
                )
            return
        if account.is_bot:
            await self._chats.auto_reply(client, event)
            return
        peer = event.sender.value
        if self._configs is not None and not await self._configs.ready(account.session_id):
            # Who is blocked or approved is known only once the configs were read.
            raise RetryLater("the account's user configs are not read yet")
        if self._configs is not None and self._configs.is_blocked(account.session_id, peer):
            # Blocked in the account's Contacts config, as the apps do: dropped (and acked).
            log.info("%s is blocked by %s: %s not bridged", peer[:10], account, _kind(event))
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
            await self._handle_other(account, client, portal, event)

    async def _handle_other(
        self,
        account: Account,
        client: SessionClient,
        portal: PortalRecord,
        event: DirectMessageEvent,
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
            await self._handle_receipt(account, client, portal, peer, content)
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

    # --- disappearing messages ---------------------------------------------------------------

    async def _learn_timer(self, account: Account, event: DirectMessageEvent) -> None:
        """Remember the conversation's disappearing setting from a timer change or from the
        fields a message carries (§2.14), also from the owner's phone's sync copies. A change
        sets the portal's topic, and gets a notice unless the peer's timer-change notice
        (:meth:`_handle_other`) announces it."""
        content, peer = event.content, event.conversation
        if event.from_this_client or peer is None or self._timers is None:
            return
        if not event.is_sync and self._configs is not None:
            if not await self._configs.ready(account.session_id):
                return  # the caller asks for the event again once they are read
            if self._configs.is_blocked(account.session_id, peer.value):
                return
        if isinstance(content, DisappearingSettings):
            expiry: Expiry | None = Expiry(content.mode, content.timer_seconds)
        elif isinstance(content, VisibleMessage) and content.expiry is not None:
            expiry = content.expiry
        else:
            return
        changed = await self._timers.learn(account.session_id, peer.value, expiry, event.timestamp)
        portal = await self._chats.existing(account.session_id, peer.value) if changed else None
        if portal is None or portal.mxid is None:
            return
        mode, timer = (expiry.mode, expiry.timer_seconds) if expiry else (ExpiryMode.OFF, 0)
        await self._show_timer_topic(peer.value, portal.mxid, mode, timer)
        if isinstance(content, DisappearingSettings) and not event.is_sync:
            return  # the peer's own timer change: its notice comes from _handle_other
        actor = "You" if event.is_sync else None
        notice = disappearing_notice(mode, timer, actor)
        await self._send(self._bot, portal, notice, f"{event.hash}:timer", event.timestamp)

    async def _show_timer_topic(
        self, peer: str, room_id: str, mode: ExpiryMode, timer: int
    ) -> None:
        """The chat's topic says the setting (none when off); set by the peer's ghost, who
        created the room."""
        topic = disappearing_notice_text(mode, timer) if mode != ExpiryMode.OFF else ""
        ghost = await self._ghosts.ensure(peer)
        try:
            await ghost.intent.set_room_topic(RoomID(room_id), topic)
        except MatrixRequestError as e:
            log.info("The disappearing setting of %s not shown in the topic: %s", room_id, e)

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
            if self._configs is None:
                await self._chats.ensure_accepted(client, portal, peer)
            else:  # accepted only when the Matrix user answers (outbound, or `accept`)
                await self._show_request(account, portal, peer, event)
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

    async def _show_request(
        self, account: Account, portal: PortalRecord, peer: str, event: DirectMessageEvent
    ) -> None:
        """Say once, in a chat the owner has not accepted, that it is a message request."""
        assert self._configs is not None
        if self._configs.is_approved(account.session_id, peer):
            return
        key = f"dm-request-notice:{portal.id}"
        if await self._cursors.is_processed(key):
            return
        await self._send(
            self._bot,
            portal,
            notice_content(REQUEST_NOTICE).serialize(),
            f"{event.hash}:request",
            event.timestamp,
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
        room = str(portal.mxid)
        files = [await self._attachment(client, ghost, room, a) for a in message.attachments]
        parts = caption_parts(text, files)
        if parts and message.quote is not None:
            parts[0] = await self._with_quote(portal, message, parts[0], ghost)
        return parts

    async def _text_content(
        self, portal: PortalRecord, body: str, ghost: GhostHandle
    ) -> dict[str, Any]:
        """Matrix content for Session ``body``: a mentioned login becomes a pill of its Matrix
        owner with their name in the chat, any other Session id a pill of its ghost."""
        return await session_text_in_room(
            body,
            room_id=str(portal.mxid),
            sender_mxid=ghost.mxid,
            reader=ghost.intent,
            ghosts=self._ghosts,
            owners=lambda ids: self._own_ids.owners(ids, None),
        )

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
        self, client: SessionClient, ghost: GhostHandle, room_id: str, attachment: Attachment
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
            uploaded = await upload_file(
                ghost.intent,
                room_id,
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
        return uploaded.apply(attachment_content(attachment, uploaded.mxc, len(data)))

    # --- other items ------------------------------------------------------------------------

    async def _handle_reaction(
        self, portal: PortalRecord, peer: str, hash_: str, reaction: Reaction
    ) -> None:
        await mirror_reaction(
            messages=self._messages,
            ghosts=self._ghosts,
            portal=portal,
            peer=peer,
            reaction=reaction,
            origin="dm",
            key=f"{hash_}:react",
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
        self,
        account: Account,
        client: SessionClient,
        portal: PortalRecord,
        peer: str,
        receipt: ReadReceipt,
    ) -> None:
        # The peer read what we sent: after reading, our own copies (the phone's view) go too.
        own = client.own_copy_hashes(receipt.timestamps)
        try:
            await shorten_after_read(client, peer, own)
        except SessionError as e:
            log.info("Could not shorten the expiry of our copies: %s", e)
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
