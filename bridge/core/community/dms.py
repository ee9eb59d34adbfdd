"""Community blinded DMs ↔ direct-chat-like portals (docs/session-protocol.md §5.10).

Someone who only knows a bridged identity's blinded id on a community server writes to it
through the server's ``/inbox``. Each such conversation (our identity, the peer's blinded id,
the server) is one portal: a room created by the peer's blinded ghost with ``is_direct``, the
identity's owner and the bot invited. For a user's login the owner is that Matrix user; for
the bot's own identity the owners are the bridge admins named by user id in
``bridge.permissions`` (README, Community direct messages).

* Inbox items (the peer's messages) are sent by the peer's ghost; outbox items that the bridge
  did not send itself (the owner wrote from their phone) are shown as the bot's notice.
  Each item is recorded under ``dm:<item id>`` (ids are unique per server), and its Matrix send
  uses a transaction id derived from it, so a re-delivery never shows it twice.
* A Matrix message from an owner becomes an outbox row (``sogs_dm``) delivered with
  ``POST /inbox/<peer>`` as that identity; an edit goes out as a new message marked
  :data:`EDIT_MARK`, quoting the original, as in direct chats.

Attachments of blinded DMs live on the file server, encrypted: they are not bridged yet (the
text and a note are).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import MessageEvent, RoomID

from bridge.core.community.actors import CommunityActors, call_server
from bridge.core.community.dm_keys import dm_portal_key, parse_dm_token
from bridge.core.community.service import parse_community_key
from bridge.core.convert.text_to_matrix import session_text_to_content
from bridge.core.ghosts import GhostManager, GhostProfile
from bridge.core.logins import LoginManager
from bridge.core.portal.events import Refused
from bridge.core.portal.outbox import Deliver, PermanentFailure
from bridge.core.portal.outgoing_text import owner_text
from bridge.core.portal.rooms import PortalRooms, send_to_portal
from bridge.db.records import MessageRecord, OutboxRecord, PortalKind, PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.matrix.rooms import Channel
from bridge.matrix.send import notice_content
from bridge.session.keys import Identity
from bridge.session.messages import Quote, VisibleMessage
from bridge.session.sent_clock import SentClock
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.models import InboxEntry

log = logging.getLogger("bridge.core.community.dms")

DM_KIND = "sogs_dm"
ATTACHMENT_NOTE = "[an attachment that the bridge cannot show yet]"


def _entry_key(entry_id: int) -> str:
    return f"dm:{entry_id}"


@dataclasses.dataclass(frozen=True)
class DmPayload:
    """A ``sogs_dm`` row: ``text`` from ``sender`` (shown as ``name``), maybe quoting the
    message (``quote_ts``, ``quote_author``)."""

    text: str
    sender: str
    name: str = ""
    quote_ts: int | None = None
    quote_author: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DmPayload:
        raw = json.loads(text)
        return cls(
            str(raw["text"]),
            str(raw["sender"]),
            str(raw.get("name") or ""),
            raw.get("quote_ts"),
            raw.get("quote_author"),
        )


class CommunityDMs:
    """Blinded-DM portals: created on the first item, fed from the boxes, answered from
    Matrix."""

    def __init__(
        self,
        *,
        portals: PortalRepo,
        messages: MessageRepo,
        outbox: OutboxRepo,
        ghosts: GhostManager,
        rooms: PortalRooms,
        bot: IntentAPI,
        bot_mxid: str,
        logins: LoginManager,
        actors: CommunityActors,
        bot_owners: Sequence[str],
        ghost_pattern: re.Pattern[str],
        portal_lock: Callable[[int], asyncio.Lock],
        sent_clock: SentClock,
    ) -> None:
        self._portals = portals
        self._messages = messages
        self._outbox = outbox
        self._ghosts = ghosts
        self._rooms = rooms
        self._bot = bot
        self._bot_mxid = bot_mxid
        self._logins = logins
        self._actors = actors
        self.bot_owners = tuple(bot_owners)
        self._ghost_pattern = ghost_pattern
        self._portal_lock = portal_lock
        self._sent_clock = sent_clock
        self._creating: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def deliverers(self) -> Mapping[str, Deliver]:
        return {DM_KIND: self.deliver}

    # --- Session → Matrix ---------------------------------------------------------------

    async def handle_entry(
        self, client: CommunityClient, owners: Sequence[str], entry: InboxEntry
    ) -> None:
        """Bridge one inbox/outbox item of ``client``'s identity; bad ones are logged."""
        where = f"{'outbox' if entry.outgoing else 'inbox'} item {entry.id}"
        if entry.error is not None or entry.content is None:
            log.warning("Dropping community %s: %s", where, entry.error)
            return
        message = entry.content
        if not isinstance(message, VisibleMessage):
            log.info("Community %s of kind %s not bridged", where, type(message).__name__)
            return
        peer = entry.recipient if entry.outgoing else entry.sender_blinded
        profile = None if entry.outgoing else GhostProfile.from_session(message.profile)
        portal = await self.ensure_portal(client, owners, peer.value, profile)
        async with self._portal_lock(portal.id):
            if await self._messages.get_by_session_key(portal.id, _entry_key(entry.id)):
                return  # already bridged (or sent from Matrix by the bridge itself)
            await self._show(portal, entry, message, peer.value)

    async def _show(
        self, portal: PortalRecord, entry: InboxEntry, message: VisibleMessage, peer: str
    ) -> None:
        body = message.body or ""
        if message.attachments:
            body = f"{body}\n{ATTACHMENT_NOTE}" if body else ATTACHMENT_NOTE
        if not body:
            log.info("Empty community DM %d not bridged", entry.id)
            return
        intent: IntentAPI
        content: dict[str, Any]
        if entry.outgoing:  # written from another device of the identity (its phone)
            intent = self._bot
            content = notice_content(f"(sent from another device) {body}").serialize()
        else:
            ghost = await self._ghosts.ensure(peer)
            intent = ghost.intent
            content = session_text_to_content(body, lambda _id: None, sender_mxid=ghost.mxid)
        key = _entry_key(entry.id)
        event_id = await send_to_portal(
            intent,
            portal,
            content,
            origin="sogs-dm",
            key=key,
            timestamp=int(entry.posted_at * 1000),
        )
        await self._messages.add_message(
            portal.id,
            str(event_id),
            key,
            timestamp=message.sig_timestamp or int(entry.posted_at * 1000),
            sender_session_id=entry.sender_blinded.value,
        )

    async def ensure_portal(
        self,
        client: CommunityClient,
        owners: Sequence[str],
        peer: str,
        profile: GhostProfile | None = None,
    ) -> PortalRecord:
        """The DM portal of (``client``'s identity, ``peer``), its room made if needed."""
        key = dm_portal_key(client.server, client.identity.session_id.value, peer)
        async with self._creating[key]:
            found = await self._portals.get_by_key(PortalKind.COMMUNITY, key)
            if found is not None and found.mxid is not None and found.unbridged_at is None:
                return found
            portal = await self._portals.get_or_create(PortalKind.COMMUNITY, key)
            ghost = await self._ghosts.ensure(peer, profile)
            name = ghost.record.displayname or peer
            room_id = await self._rooms.create_room(
                Channel(id=peer, displayname=name),
                creator=ghost.intent,
                topic=f"Direct messages through the community server {client.server.base_url}",
                is_direct=True,
                invitees=[*owners, self._bot_mxid],
            )
            log.info("Created community DM portal %s for %s", room_id, key)
            portal = await self._portals.set_mxid(portal.id, room_id)
        try:
            await self._bot.join_room(RoomID(room_id))
        except MatrixError as e:
            log.warning("The bot could not join the community DM %s: %s", room_id, e)
        return portal

    # --- Matrix → Session ---------------------------------------------------------------

    async def _identity(self, portal: PortalRecord) -> tuple[Identity, int | None, list[str]]:
        """The portal's identity, its login id (None: the bot) and who may speak for it."""
        _, token = parse_community_key(portal.session_key)
        ours, _ = parse_dm_token(token)
        if ours == self._actors.bot_identity.session_id.value:
            return self._actors.bot_identity, None, list(self.bot_owners)
        for login in self._logins.cached_logins():
            if login.session_id == ours and login.record.mxid is not None:
                return login.identity, login.record.id, [login.record.mxid]
        raise Refused(
            "This chat's Session account is no longer logged in to the bridge, so nothing "
            "sent here reaches Session."
        )

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        """A text message (or an edit, or a reply) from the identity's owner: queued."""
        _, login_id, owners = await self._identity(portal)
        sender = str(event.sender)
        if sender not in owners:
            raise Refused("Only the owner of this chat's Session account can write here.")
        out = owner_text(
            event.content.serialize(), ghost_pattern=self._ghost_pattern, sender_name=name
        )
        quoted = await self._mapped(out.quoted_event)
        payload = DmPayload(out.text, sender, name)
        if quoted is not None and quoted.sender_session_id:
            payload = dataclasses.replace(
                payload, quote_ts=quoted.timestamp, quote_author=quoted.sender_session_id
            )
        await self._outbox.enqueue_once(
            f"sogs-dm-out:{event.event_id}",
            portal.id,
            DM_KIND,
            payload.to_json(),
            login_id=login_id,
            matrix_event_id=str(event.event_id),
        )

    async def _mapped(self, event_id: object) -> MessageRecord | None:
        return await self._messages.get_by_mxid(event_id) if isinstance(event_id, str) else None

    async def deliver(self, row: OutboxRecord) -> None:
        """Send a ``sogs_dm`` row to the peer's inbox and record it under the item's id."""
        portal = await self._actors.portal_of(row)
        payload = DmPayload.from_json(row.payload)
        try:
            identity, login_id, _ = await self._identity(portal)
        except Refused as e:
            raise PermanentFailure(str(e)) from e
        _, token = parse_community_key(portal.session_key)
        _, peer = parse_dm_token(token)
        client, _ = self._actors.client(identity, portal)
        quote = None
        if payload.quote_ts is not None and payload.quote_author is not None:
            quote = Quote(payload.quote_ts, payload.quote_author)
        sent_at = self._sent_clock.next_ms()
        message = VisibleMessage(
            body=payload.text,
            quote=quote,
            profile=self._actors.profile(payload.name, relayed=login_id is None),
            sig_timestamp=sent_at,
            blocks_community_message_requests=False,
        )
        async with self._portal_lock(portal.id):
            sent = await call_server(client.send_inbox(peer, message))
            await self._messages.add_message(
                portal.id,
                row.matrix_event_id or f"outbox:{row.id}",
                _entry_key(sent.id),
                timestamp=sent_at,
                sender_session_id=client.blinded_id.value,
                sender_mxid=payload.sender,
            )
        log.info("Sent outbox %d as community DM %d", row.id, sent.id)
