"""Matrix events into direct chats (Matrix → Session) for direct-chat portals.

Only the Matrix user who owns the portal's Session identity speaks for it. Messages, media,
reactions and redactions become outbox rows when the Matrix event is handled; the outbox
sender delivers them in order, under the portal lock, and records the mapping (the swarm hash
and the sent timestamp, which is how Session names the message later) right after the send.
The encoded message is kept in the row before it is stored: a retry stores the same bytes, the
same message for Session (:mod:`bridge.session.outgoing`).

Session has no edits in direct chats: a Matrix edit goes out as a new message marked
:data:`EDIT_MARK`, quoting the original. Only the author of a message may delete it (an unsend);
a reaction is removed by the same reaction with the remove action. Typing notifications and
read receipts are ephemeral and are sent at once, never queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.types import (
    EventType,
    Membership,
    MemberStateEventContent,
    MessageEvent,
    ReactionEvent,
    RedactionEvent,
    StateEvent,
)

from bridge.core.convert.matrix_to_text import strip_unsafe
from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, MEDIA_MSGTYPES
from bridge.core.direct.accounts import Account, SessionAccounts
from bridge.core.direct.chats import parse_direct_key
from bridge.core.direct.media import MediaRefused, media_payload, too_large_text
from bridge.core.direct.payloads import DirectPayload
from bridge.core.direct.profiles import SessionProfiles
from bridge.core.direct.timers import shorten_after_read
from bridge.core.portal.events import Refused
from bridge.core.portal.ops import MediaOp, MessageOp, ReactionOp, RedactionOp, TextOp
from bridge.core.portal.outbox import PermanentFailure, TemporaryFailure
from bridge.core.portal.outgoing_text import owner_text
from bridge.core.portal.router import RoomEvent
from bridge.db.records import MessageRecord, OutboxRecord, PortalKind, PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.media import EncryptedFileError, download_file
from bridge.matrix.reads import MediaDownload
from bridge.session.client import SessionClient
from bridge.session.dm_events import SentMessage
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.messages import Quote
from bridge.session.messages.model import VOICE_MESSAGE_FLAG
from bridge.session.outgoing import OutgoingMessage

log = logging.getLogger("bridge.core.direct.outbound")

DM_KIND = "dm_send"
EXPIRY_MARGIN_MS = 60_000  # a kept message is stored again only while nodes still accept it


class DirectOutbound:
    """The :class:`bridge.core.portal_events.PortalHandler` of direct chats, and the outbox
    deliverer of ``dm_send`` rows."""

    def __init__(
        self,
        *,
        accounts: SessionAccounts,
        messages: MessageRepo,
        outbox: OutboxRepo,
        portals: PortalRepo,
        ghost_pattern: re.Pattern[str],
        download: MediaDownload,
        portal_lock: Callable[[int], Any],
    ) -> None:
        self._accounts = accounts
        self._messages = messages
        self._outbox = outbox
        self._portals = portals
        self._ghost_pattern = ghost_pattern
        self._download = download
        self._portal_lock = portal_lock
        self._typing: dict[int, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- Matrix events ----------------------------------------------------------------------

    def _owner_account(self, portal: PortalRecord, sender: str) -> Account:
        ours, _ = parse_direct_key(portal.session_key)
        found = self._accounts.get(ours)
        if found is None:
            raise Refused(
                "This chat's Session account is no longer logged in to the bridge, so nothing "
                "sent here reaches Session."
            )
        account = found[0]
        if account.owner_mxid != sender:
            raise Refused(
                f"Only {account.owner_mxid} can send to Session from this chat: it is their "
                "Session account."
            )
        return account

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        """A text or emote message (or an edit of one) from the chat's owner."""
        account = self._owner_account(portal, str(event.sender))
        out = owner_text(
            event.content.serialize(), ghost_pattern=self._ghost_pattern, sender_name=name
        )
        quote = await self._mapped(out.quoted_event)
        quoted = None
        if quote is not None and quote.sender_session_id:
            quoted = Quote(quote.timestamp, quote.sender_session_id)
        op = TextOp(out.text, quoted)
        await self._enqueue(portal, account, str(event.event_id), str(event.sender), op)

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        """Media, reactions and redactions; anything else is logged."""
        op: MessageOp
        if isinstance(event, MessageEvent):
            account = self._owner_account(portal, str(event.sender))
            content = event.content.serialize()
            if content.get("msgtype") not in MEDIA_MSGTYPES:
                raise Refused("This kind of message cannot be sent to Session.")
            try:
                op = media_payload(content)
            except MediaRefused as e:
                raise Refused(str(e)) from None
        elif isinstance(event, ReactionEvent):
            account = self._owner_account(portal, str(event.sender))
            relates = event.content.relates_to
            if not relates.key or strip_unsafe(relates.key) != relates.key:
                raise Refused("Only an emoji can be sent to Session as a reaction.")
            op = ReactionOp(str(relates.event_id), relates.key)
        elif isinstance(event, RedactionEvent):
            account = self._owner_account(portal, str(event.sender))
            op = RedactionOp(str(event.redacts))
        elif isinstance(event, StateEvent) and event.type == EventType.ROOM_MEMBER:
            await self._member_changed(portal, event)
            return
        else:
            log.debug("%s in direct chat %d not bridged", event.type, portal.id)
            return
        await self._enqueue(portal, account, str(event.event_id), str(event.sender), op)

    async def _show_name(self, account: Account, name: str | None) -> None:
        found = self._accounts.get(account.session_id)
        # With user configs the login's profile is its UserProfile, never a Matrix name.
        if found is not None and self._accounts.configs is None:
            await SessionProfiles.update_name(found[1], name)

    async def _member_changed(self, portal: PortalRecord, event: StateEvent) -> None:
        """The owner's new display name in the chat becomes their Session name."""
        content, sender = event.content, str(event.sender)
        found = self._accounts.get(parse_direct_key(portal.session_key)[0])
        if (
            found is not None
            and found[0].owner_mxid == sender == event.state_key
            and isinstance(content, MemberStateEventContent)
            and content.membership == Membership.JOIN
        ):
            await self._show_name(found[0], content.displayname)

    async def _mapped(self, event_id: object) -> MessageRecord | None:
        return await self._messages.get_by_mxid(event_id) if isinstance(event_id, str) else None

    async def _enqueue(
        self,
        portal: PortalRecord,
        account: Account,
        event_id: str,
        sender: str,
        op: MessageOp,
    ) -> None:
        await self._outbox.enqueue(
            portal.id,
            DM_KIND,
            DirectPayload(op, sender).to_json(),
            login_id=account.login_id,
            matrix_event_id=event_id,
        )

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, row: OutboxRecord) -> None:
        """The outbox deliverer of ``dm_send`` rows."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.unbridged_at is not None:
            raise PermanentFailure("the chat is no longer bridged")
        ours, peer = parse_direct_key(portal.session_key)
        found = self._accounts.get(ours)
        if found is None:
            raise TemporaryFailure("the Session account of this chat is not running")
        client = found[1]
        payload = DirectPayload.from_json(row.payload)
        async with self._portal_lock(portal.id):
            try:
                await self._deliver(portal, client, peer, row, payload)
            except InvalidInput as e:
                raise PermanentFailure(f"Session refused it: {e}") from e
            except SessionError as e:
                # The detail names storage nodes (addresses): the log's, not the sender's.
                log.info("Outbox %d: Session send failed: %s", row.id, e)
                raise TemporaryFailure("the Session network cannot be reached") from e

    async def _deliver(
        self,
        portal: PortalRecord,
        client: SessionClient,
        peer: str,
        row: OutboxRecord,
        payload: DirectPayload,
    ) -> None:
        op, event_id = payload.op, row.matrix_event_id or f"outbox:{row.id}"
        if isinstance(op, ReactionOp):
            await self._react(portal, client, peer, row, event_id, payload, op)
            return
        if isinstance(op, RedactionOp):
            await self._redact(client, peer, row, payload, op)
            return
        if await self._messages.get_by_mxid(event_id):
            return  # sent and recorded before a crash
        if self._accounts.configs is not None:  # the first reply accepts a message request
            await self._accounts.configs.accept(client, peer)
        sent = await self._send_once(row, payload, client, lambda: self._message(client, peer, op))
        await self._messages.add_message(
            portal.id,
            event_id,
            sent.hash,
            timestamp=sent.timestamp,
            sender_session_id=client.session_id.value,
            sender_mxid=payload.sender,
        )
        log.info("Sent outbox %d to %s", row.id, peer[:10])

    async def _send_once(
        self,
        row: OutboxRecord,
        payload: DirectPayload,
        client: SessionClient,
        prepare: Callable[[], Awaitable[OutgoingMessage]],
    ) -> SentMessage:
        """Send the row's message so that a retry after a crash cannot make it twice.

        The encoded message is kept in the row before it is stored, and a retry stores the
        same bytes again: the storage nodes and the recipient see one message, not a second
        one with the same (sender, timestamp) identity (see :mod:`bridge.session.outgoing`).
        A kept message too old for the nodes to accept is encoded afresh.
        """
        outgoing = payload.prepared
        if outgoing is not None and outgoing.expired(int(time.time() * 1000) + EXPIRY_MARGIN_MS):
            outgoing = None
        if outgoing is None:
            outgoing = await prepare()
            await self._outbox.set_payload(row.id, payload.with_prepared(outgoing).to_json())
        return await client.send_prepared(outgoing)

    async def _message(
        self, client: SessionClient, peer: str, op: TextOp | MediaOp
    ) -> OutgoingMessage:
        if isinstance(op, TextOp):
            return client.prepare_text(peer, op.text, op.quote)
        return await self._media(client, peer, op)

    async def _media(self, client: SessionClient, peer: str, media: MediaOp) -> OutgoingMessage:
        try:
            data = await download_file(self._download, media.url, media.file)
        except EncryptedFileError as e:
            raise PermanentFailure(str(e)) from e
        except MatrixRequestError as e:
            log.info("The homeserver did not give %s: %s", media.url, e)
            text = f"the homeserver did not give the file (HTTP {e.http_status})"
            if e.http_status is not None and 400 <= e.http_status < 500:
                raise PermanentFailure(text) from e
            raise TemporaryFailure(text) from e
        if len(data) > MAX_SESSION_FILE_BYTES:
            raise PermanentFailure(too_large_text(len(data)))
        pointer = await client.upload_attachment(
            data, media.filename, media.mimetype, media.caption
        )
        pointer = dataclasses.replace(
            pointer,
            flags=VOICE_MESSAGE_FLAG if media.voice else 0,
            width=media.width,
            height=media.height,
        )
        return client.prepare_text(peer, media.caption, attachments=(pointer,))

    async def _react(
        self,
        portal: PortalRecord,
        client: SessionClient,
        peer: str,
        row: OutboxRecord,
        event_id: str,
        payload: DirectPayload,
        op: ReactionOp,
    ) -> None:
        target = await self._messages.get_by_mxid(op.target)
        if target is None or target.sender_session_id is None:
            raise PermanentFailure("the message you reacted to is not on Session")
        author, timestamp, emoji = target.sender_session_id, target.timestamp, op.emoji

        async def reaction() -> OutgoingMessage:
            return client.prepare_reaction(peer, author, timestamp, emoji)

        await self._send_once(row, payload, client, reaction)
        await self._messages.add_reaction(portal.id, event_id, target.id, payload.sender, emoji)

    async def _redact(
        self,
        client: SessionClient,
        peer: str,
        row: OutboxRecord,
        payload: DirectPayload,
        op: RedactionOp,
    ) -> None:
        target, sender = op.target, payload.sender
        reaction = await self._messages.get_reaction_by_mxid(target)
        if reaction is not None:
            message = await self._messages.get_by_id(reaction.target_message_id)
            if message is not None and message.sender_session_id and reaction.sender == sender:
                author, timestamp = message.sender_session_id, message.timestamp
                emoji = reaction.emoji

                async def removal() -> OutgoingMessage:
                    return client.prepare_reaction(peer, author, timestamp, emoji, remove=True)

                await self._send_once(row, payload, client, removal)
            await self._messages.remove_reaction(reaction.id)
            return
        message = await self._messages.get_by_mxid(target)
        if message is None:
            return  # nothing of it reached Session
        if message.sender_mxid != sender:
            raise PermanentFailure(
                "Session only lets the author delete a message; it was removed here only"
            )
        unsent = message.timestamp

        async def unsend() -> OutgoingMessage:
            return client.prepare_unsend(peer, unsent)

        await self._send_once(row, payload, client, unsend)
        await self._messages.delete_message(message.id)

    # --- typing and receipts ----------------------------------------------------------------

    async def handle_ephemeral(self, raw: Mapping[str, Any]) -> None:
        """``m.typing`` and ``m.receipt`` of a direct chat's owner go to the peer at once."""
        kind, room_id, content = raw.get("type"), raw.get("room_id"), raw.get("content")
        if kind not in ("m.typing", "m.receipt") or not isinstance(room_id, str):
            return
        if not isinstance(content, Mapping):
            return
        portal = await self._portals.get_by_mxid(room_id)
        if portal is None or portal.kind != PortalKind.DIRECT or portal.unbridged_at is not None:
            return
        ours, peer = parse_direct_key(portal.session_key)
        found = self._accounts.get(ours)
        if found is None or found[0].owner_mxid is None:
            return
        client, owner = found[1], found[0].owner_mxid
        if kind == "m.typing":
            users = content.get("user_ids")
            typing = isinstance(users, list) and owner in users
            if typing != self._typing.get(portal.id, False):
                self._typing[portal.id] = typing
                self._spawn(client.send_typing(peer, typing), "typing")
            return
        timestamps, hashes = [], []
        for event_id, receipts in content.items():
            read = receipts.get("m.read") if isinstance(receipts, Mapping) else None
            if isinstance(read, Mapping) and owner in read:
                record = await self._messages.get_by_mxid(str(event_id))
                if record is not None and record.sender_session_id == peer:
                    timestamps.append(record.timestamp)
                    if record.session_key:
                        hashes.append(record.session_key)
        if timestamps:
            self._spawn(client.send_read_receipt(peer, timestamps), "read receipt")
            self._spawn(shorten_after_read(client, peer, hashes), "read expiry")
            if self._accounts.configs is not None:  # the phone shows the chat read too
                read = self._accounts.configs.mark_read(ours, peer, max(timestamps))
                self._spawn(read, "read state")

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except SessionError as e:
                log.info("Could not send a %s to Session: %s", what, e)
            except Exception:
                log.exception("Sending a %s to Session failed", what)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
