"""Matrix messages into community rooms (Matrix → Session) for community portals.

A Matrix user's message goes out under their own Session login (blinded for that server), or,
when the portal has relay on, through the bot's identity with the relay template; otherwise it
is refused with a notice. The decision and the outbox row are made when the Matrix event is
handled; the post itself happens in the outbox sender, under the portal lock, together with
recording the mapping, so the poller cannot see our own post before its mapping exists.

Files (``m.image``/``m.video``/``m.audio``/``m.file``) are posted the community way
(docs/session-protocol.md §5.8): downloaded from the homeserver (authenticated media,
docs/matrix-side.md §7), uploaded raw to the room, and referenced by the post's ``files`` and an
``AttachmentPointer`` with the room file URL. Session's 10 MB limit is checked from the event's
``info.size`` (a notice right away) and again on the downloaded bytes. Edits, reactions and
redactions are :mod:`bridge.core.community.relations`'s part.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from mautrix.errors import MatrixRequestError
from mautrix.types import MessageEvent, ReactionEvent, RedactionEvent, RelationType

from bridge.core.community.actors import CommunityActors, call_server
from bridge.core.community.dm_keys import is_dm_portal
from bridge.core.community.dms import CommunityDMs
from bridge.core.community.payloads import PostMedia, PostPayload
from bridge.core.community.relations import CommunityRelations, MayRelay, outbox_dedup_key
from bridge.core.convert.matrix_to_text import matrix_to_session_text
from bridge.core.convert.media import MAX_SESSION_FILE_BYTES, human_size, matrix_media
from bridge.core.convert.names import clean_name
from bridge.core.portal.events import NoLogin, Refused
from bridge.core.portal.outbox import Deliver, PermanentFailure, TemporaryFailure
from bridge.core.portal.outgoing_text import nonempty
from bridge.core.portal.router import RoomEvent
from bridge.db.records import OutboxRecord, PortalRecord
from bridge.db.repos.messages import MessageRepo
from bridge.db.repos.outbox import OutboxRepo
from bridge.matrix.media import EncryptedFileError, download_file
from bridge.matrix.reads import MediaDownload
from bridge.session.messages import Attachment, Quote, VisibleMessage
from bridge.session.messages.model import VOICE_MESSAGE_FLAG
from bridge.session.sent_clock import SentClock
from bridge.session.sogs.client import CommunityClient

log = logging.getLogger("bridge.core.community.outbound")

# How many recent posts a retry searches for its own earlier attempt.
RECENT_CHECK = 100

POST_KIND = "sogs_post"
DisplayName = Callable[[str, str], Awaitable[str]]  # (room, mxid) → display name


class CommunityOutbound:
    """Decides how a Matrix message reaches a community room, and posts it."""

    def __init__(
        self,
        *,
        actors: CommunityActors,
        relations: CommunityRelations,
        messages: MessageRepo,
        outbox: OutboxRepo,
        ghost_pattern: re.Pattern[str],
        relay_template: str,
        portal_lock: Callable[[int], Any],
        download_media: MediaDownload,
        display_name: DisplayName,
        may_relay: MayRelay,
        sent_clock: SentClock,
        dms: CommunityDMs | None = None,
    ) -> None:
        self._dms = dms
        self._actors = actors
        self._relations = relations
        self._sent_clock = sent_clock
        self._messages = messages
        self._outbox = outbox
        self._ghost_pattern = ghost_pattern
        self._relay_template = relay_template
        self._portal_lock = portal_lock
        self._download_media = download_media
        self._display_name = display_name
        self._may_relay = may_relay

    @property
    def actors(self) -> CommunityActors:
        """Who acts on Session (bridge.app hooks the bridge-made identities in)."""
        return self._actors

    def deliverers(self) -> dict[str, Deliver]:
        """The outbox deliverers of every community row kind."""
        dms = self._dms.deliverers() if self._dms is not None else {}
        return {POST_KIND: self.deliver, **self._relations.deliverers(), **dms}

    async def handle_event(self, portal: PortalRecord, event: RoomEvent) -> None:
        """Media, reactions and redactions in a community portal; other events are logged."""
        if is_dm_portal(portal):
            if isinstance(event, MessageEvent | ReactionEvent | RedactionEvent):
                raise Refused("Only text messages are sent in community direct messages for now.")
            log.debug("%s in community DM portal %d not bridged", event.type, portal.id)
            return
        if isinstance(event, ReactionEvent):
            await self._relations.handle_reaction(portal, event)
        elif isinstance(event, RedactionEvent):
            await self._relations.handle_redaction(portal, event)
        elif isinstance(event, MessageEvent):
            name = await self._display_name(str(event.room_id), str(event.sender))
            await self._handle_media(portal, event, name)
        else:
            log.debug("%s in community portal %d not bridged", event.type, portal.id)

    async def handle_message(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        """Queue a text message (or an edit) for the portal's room, or raise :class:`Refused`."""
        if is_dm_portal(portal):
            if self._dms is None:
                raise Refused("Community direct messages are not bridged.")
            await self._dms.handle_message(portal, event, clean_name(name))
            return
        content = event.content.serialize()
        if _is_edit(event):
            text = self._text(content, name)
            await self._relations.handle_edit(portal, event, text, clean_name(name))
            return
        text = nonempty(self._text(content, name))
        await self._enqueue_post(portal, event, name, text, content, media=None)

    def _text(self, content: dict[str, Any], name: str) -> str:
        converted = matrix_to_session_text(
            content, ghost_pattern=self._ghost_pattern, sender_name=name
        )
        return converted.text

    async def _handle_media(self, portal: PortalRecord, event: MessageEvent, name: str) -> None:
        content = event.content.serialize()
        if _is_edit(event):
            raise Refused("Edits of files cannot be sent to Session.")
        media = matrix_media(content)
        if media is None:
            raise Refused(f"{event.content.msgtype} messages cannot be sent to Session.")
        if media.size is not None and media.size > MAX_SESSION_FILE_BYTES:
            raise Refused(
                f"{media.filename} ({human_size(media.size)}) was not sent to Session: Session "
                f"accepts files up to {human_size(MAX_SESSION_FILE_BYTES)}."
            )
        file = PostMedia(
            media.mxc,
            media.filename,
            media.mimetype,
            media.width,
            media.height,
            media.voice,
            dict(media.file) if media.file is not None else None,
        )
        await self._enqueue_post(portal, event, name, media.caption, content, media=file)

    async def _enqueue_post(
        self,
        portal: PortalRecord,
        event: MessageEvent,
        name: str,
        text: str,
        content: dict[str, Any],
        *,
        media: PostMedia | None,
    ) -> None:
        sender = str(event.sender)
        login_id = await self._actors.login_id_of(sender)
        display = clean_name(name) or sender
        made = (
            None if login_id is not None else await self._actors.made_choice(portal, sender, name)
        )
        if made is not None:  # the user's bridge-made identity (docs/migration.md §7)
            login_id = made.made.login_id  # its profile names it after ``display``
        elif login_id is None:
            # Relay carries only users with a permission level (README, Permissions).
            if not portal.relay_enabled or not self._may_relay(sender):
                raise NoLogin("message")
            caption = text or (media.filename if media else "")
            text = self._relay_template.format(displayname=display, message=caption)
        quote = await self._quote(content)
        payload = PostPayload(text, display, sender, media, quote)
        # Once per Matrix event: an event handled again after a crash queues nothing more.
        await self._outbox.enqueue_once(
            outbox_dedup_key(str(event.event_id)),
            portal.id,
            POST_KIND,
            payload.to_json(),
            login_id=login_id,
            matrix_event_id=str(event.event_id),
        )

    async def _quote(self, content: dict[str, Any]) -> Quote | None:
        relates = content.get("m.relates_to")
        reply = relates.get("m.in_reply_to") if isinstance(relates, dict) else None
        target = reply.get("event_id") if isinstance(reply, dict) else None
        if not isinstance(target, str):
            return None
        record = await self._messages.get_by_mxid(target)
        if record is None or record.sender_session_id is None:
            return None
        return Quote(timestamp=record.timestamp, author=record.sender_session_id)

    async def _fetch(self, mxc: str, file: dict[str, Any] | None = None) -> bytes:
        try:
            data = await download_file(self._download_media, mxc, file)
        except EncryptedFileError as e:
            raise PermanentFailure(str(e)) from e
        except MatrixRequestError as e:
            log.info("The homeserver did not give %s: %s", mxc, e)
            if e.http_status >= 500 or e.http_status == 429:
                raise TemporaryFailure(
                    f"the homeserver could not give the file (HTTP {e.http_status})"
                ) from e
            raise PermanentFailure(
                f"the homeserver refused the file (HTTP {e.http_status})"
            ) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TemporaryFailure(f"cannot reach the homeserver ({type(e).__name__})") from e
        if len(data) > MAX_SESSION_FILE_BYTES:
            raise PermanentFailure(
                f"the file is {human_size(len(data))}; Session accepts files up to "
                f"{human_size(MAX_SESSION_FILE_BYTES)}"
            )
        return data

    async def deliver(self, row: OutboxRecord) -> None:
        """The outbox deliverer of ``sogs_post`` rows (text, or a file with its caption)."""
        portal = await self._actors.portal_of(row)
        payload = PostPayload.from_json(row.payload)
        identity = await self._actors.identity_of(row)
        client, token = self._actors.client(identity, portal)
        post = _Post(row, portal, payload.sender, author=self._actors.blinded(identity, portal))
        if payload.sent_at is not None and await self._record_if_posted(
            post, client, token, payload.sent_at
        ):
            return
        # The sent timestamp identifies the post (§2.11); it comes from the clock all the
        # bridge's identities share (bridge/session/sent_clock.py). Stored before posting, so
        # that a retry after a crash between posting and recording finds the post instead of
        # posting it twice.
        sent_at = self._sent_clock.next_ms() if payload.sent_at is None else payload.sent_at
        await self._outbox.set_payload(row.id, payload.with_sent_at(sent_at).to_json())
        attachments: tuple[Attachment, ...] = ()
        files: list[int] = []
        if payload.media is not None:
            attachment, file_id = await self._upload(client, token, payload.media)
            attachments, files = (attachment,), [file_id]
        message = VisibleMessage(
            body=payload.text or None,
            attachments=attachments,
            quote=payload.quote,
            profile=await self._actors.post_profile(
                identity, payload.name, relayed=row.login_id is None
            ),
            sig_timestamp=sent_at,
            blocks_community_message_requests=self._actors.blocks(relayed=row.login_id is None),
        )
        async with self._portal_lock(portal.id):
            posted = await call_server(client.post(token, message, files=files))
            await self._record(post, posted.id, sent_at)
        log.info("Posted outbox %d as community message %s/%d", row.id, token, posted.id)

    async def _upload(
        self, client: CommunityClient, token: str, media: PostMedia
    ) -> tuple[Attachment, int]:
        """Upload a post's file to the room: its attachment pointer and its file id."""
        data = await self._fetch(media.mxc, media.file)
        upload = await call_server(client.upload(token, data, media.filename))
        attachment = Attachment(
            url=upload.url,
            size=len(data),
            content_type=media.mimetype,
            file_name=media.filename,
            flags=VOICE_MESSAGE_FLAG if media.voice else 0,
            width=media.width,
            height=media.height,
        )
        return attachment, upload.id

    async def _record(self, post: _Post, post_id: int, sent_at: int) -> None:
        row = post.row
        await self._messages.add_message(
            post.portal.id,
            row.matrix_event_id or f"outbox:{row.id}",
            str(post_id),
            timestamp=sent_at,
            sender_session_id=post.author,
            sender_mxid=post.sender,
        )

    async def _record_if_posted(
        self, post: _Post, client: CommunityClient, token: str, sent_at: int
    ) -> bool:
        """After an interrupted attempt: if the post reached the server, record it, True."""
        async with self._portal_lock(post.portal.id):
            for found in await call_server(client.recent(token, RECENT_CHECK)):
                content = found.content
                if (
                    str(found.author) == post.author
                    and isinstance(content, VisibleMessage)
                    and content.sig_timestamp == sent_at
                ):
                    log.info("Outbox %d was posted before a restart; recording it", post.row.id)
                    await self._record(post, found.id, sent_at)
                    return True
        return False

    def is_own_identity(self, server_pubkey: bytes, author: str) -> bool:
        """Whether ``author`` (a blinded id) is the bot or a logged-in user on that server."""
        return self._actors.is_own_identity(server_pubkey, author)


@dataclass(frozen=True)
class _Post:
    """The row being posted, its portal, its Matrix sender and its Session author."""

    row: OutboxRecord
    portal: PortalRecord
    sender: str
    author: str


def _is_edit(event: MessageEvent) -> bool:
    relates = event.content.relates_to
    return relates is not None and relates.rel_type == RelationType.REPLACE
