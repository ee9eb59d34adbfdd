"""Matrix messages into community rooms (Matrix → Session) for community portals.

A Matrix user's message goes out under their own Session login (blinded for that server), or,
when the portal has relay on, through the bot's identity with the relay template; otherwise it
is refused with a notice. The decision and the outbox row are made when the Matrix event is
handled; the post itself happens in the outbox sender, under the portal lock, together with
recording the mapping, so the poller cannot see our own post before its mapping exists.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from mautrix.types import MessageEvent

from bridge.core.communities import Communities, parse_community_key
from bridge.core.convert.matrix_to_text import matrix_to_session_text
from bridge.core.convert.names import clean_name
from bridge.core.logins import LoginManager
from bridge.core.outbox_sender import PermanentFailure, TemporaryFailure
from bridge.core.portal_events import Refused
from bridge.core.router import RoomEvent
from bridge.db.records import OutboxRecord, PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.db.repos.portals import PortalRepo
from bridge.session.blinding import blind15_id
from bridge.session.keys import Identity
from bridge.session.messages import Profile, Quote, VisibleMessage
from bridge.session.sogs.client import CommunityClient
from bridge.session.sogs.errors import CommunityError, CommunityUnreachable

log = logging.getLogger("bridge.core.community_outbound")


@dataclass(frozen=True)
class MatrixMessage:
    """What the outbound path needs of a Matrix message event."""

    event_id: str
    sender: str
    sender_name: str
    content: dict[str, Any]


POST_KIND = "sogs_post"
Notify = Callable[[str, str, str, str], Awaitable[None]]  # room, event, sender, reason


class CommunityOutbound:
    """Decides how a Matrix message reaches a community room, and posts it."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        communities: Communities,
        logins: LoginManager,
        bot_identity: Identity,
        messages: MessageRepo,
        outbox: OutboxRepo,
        portals: PortalRepo,
        ghost_pattern: re.Pattern[str],
        relay_template: str,
        portal_lock: Callable[[int], Any],
    ) -> None:
        self._http = http
        self._communities = communities
        self._logins = logins
        self._bot_identity = bot_identity
        self._messages = messages
        self._outbox = outbox
        self._portals = portals
        self._ghost_pattern = ghost_pattern
        self._relay_template = relay_template
        self._portal_lock = portal_lock
        self._clients: dict[tuple[str, str], CommunityClient] = {}

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        """Other Matrix events in a community portal."""
        if isinstance(event, MessageEvent):
            raise Refused("Only text messages can be bridged to communities so far.")
        log.debug("%s in community portal %d not bridged", event.type, portal.id)

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        """Queue a text message for the portal's room, or raise :class:`Refused`."""
        message = MatrixMessage(
            str(event.event_id), str(event.sender), name, event.content.serialize()
        )
        mine = await self._logins.logins_of(message.sender)
        converted = matrix_to_session_text(
            message.content, ghost_pattern=self._ghost_pattern, sender_name=message.sender_name
        )
        text = converted.text
        if not text.strip():
            raise Refused("Only text messages can be bridged to communities so far.")
        if mine:
            login_id: int | None = mine[0].record.id
        elif portal.relay_enabled:
            login_id = None
            text = self._relay_template.format(
                displayname=clean_name(message.sender_name) or message.sender, message=text
            )
        else:
            raise Refused(
                "Your message was not sent to Session: you have no Session login and relay is "
                "off in this room. Send `login` to the bridge bot in a direct chat, or ask a "
                "room admin to turn relay on."
            )
        payload: dict[str, Any] = {
            "text": text,
            "name": clean_name(message.sender_name) or message.sender,
        }
        quote = await self._quote(portal, message.content)
        if quote is not None:
            payload["quote"] = {"timestamp": quote.timestamp, "author": quote.author}
        await self._outbox.enqueue(
            portal.id,
            POST_KIND,
            json.dumps(payload),
            login_id=login_id,
            matrix_event_id=message.event_id,
        )

    async def _quote(self, portal: PortalRecord, content: dict[str, Any]) -> Quote | None:
        relates = content.get("m.relates_to")
        reply = relates.get("m.in_reply_to") if isinstance(relates, dict) else None
        target = reply.get("event_id") if isinstance(reply, dict) else None
        if not isinstance(target, str):
            return None
        record = await self._messages.get_by_mxid(target)
        if record is None or record.sender_session_id is None:
            return None
        return Quote(timestamp=record.timestamp, author=record.sender_session_id)

    async def _identity(self, row: OutboxRecord) -> Identity:
        if row.login_id is None:
            return self._bot_identity
        login = await self._logins.login_by_id(row.login_id)
        if login is None:
            raise PermanentFailure("the Session login this message was queued for is gone")
        return login.identity

    def _client(self, identity: Identity, portal: PortalRecord) -> tuple[CommunityClient, str]:
        server, token = parse_community_key(portal.session_key)
        key = (identity.session_id.value, server.base_url)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = CommunityClient(self._http, identity, server)
        return client, token

    async def deliver(self, row: OutboxRecord) -> None:
        """The outbox deliverer of ``sogs_post`` rows."""
        portal = await self._portals.get_by_id(row.portal_id)
        if portal is None or portal.unbridged_at is not None:
            raise PermanentFailure("the room is no longer bridged")
        payload = json.loads(row.payload)
        identity = await self._identity(row)
        client, token = self._client(identity, portal)
        sent_at = int(time.time() * 1000)
        quote = payload.get("quote")
        message = VisibleMessage(
            body=payload["text"],
            quote=Quote(quote["timestamp"], quote["author"]) if quote else None,
            profile=Profile(display_name=payload["name"] if row.login_id else None),
            sig_timestamp=sent_at,
        )
        async with self._portal_lock(portal.id):
            try:
                posted = await client.post(token, message)
            except CommunityUnreachable as e:
                raise TemporaryFailure(str(e)) from e
            except CommunityError as e:
                if e.status is not None and e.status >= 500:
                    raise TemporaryFailure(str(e)) from e
                raise PermanentFailure(f"the community server refused it: {e}") from e
            author = blind15_id(identity, client.server.pubkey).value
            await self._messages.add_message(
                portal.id,
                row.matrix_event_id or f"outbox:{row.id}",
                str(posted.id),
                timestamp=sent_at,
                sender_session_id=author,
            )
        log.info("Posted outbox %d as community message %s/%d", row.id, token, posted.id)

    def is_own_identity(self, server_pubkey: bytes, author: str) -> bool:
        """Whether ``author`` (a blinded id) is the bot or a logged-in user on that server."""
        return author in self._own_ids(server_pubkey)

    def _own_ids(self, server_pubkey: bytes) -> set[str]:
        identities = [self._bot_identity, *self._logins.cached_identities()]
        return {blind15_id(i, server_pubkey).value for i in identities}
