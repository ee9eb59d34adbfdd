"""One Session identity's direct messages: send, receive as typed events (§2, §3, §6).

Section numbers (§n) refer to ``docs/session-protocol.md``. A :class:`SessionClient` sends 1:1
messages into the recipient's swarm (namespace 0, §3.1) and polls its own swarm's namespace 0
(§6.6), turning every verified message into a
:class:`~bridge.session.dm_events.DirectMessageEvent`.

Delivery contract (the design's "crash re-delivers, dedup makes it harmless"):

* events reach subscribers one at a time, in the order the swarm node stored them;
* a message's poll cursor is acknowledged only after *every* subscriber returned for it (an
  async callback returned, or an ``async for`` consumer asked for the next event); events
  are held while there is no subscriber;
* a crash (or a :meth:`SessionClient.stop` that has to cancel) before that re-delivers the
  message later, so **subscribers must be idempotent by** ``event.hash``;
* a subscriber that raises gets the same event again (all subscribers do) after a backoff, up
  to ``max_delivery_attempts``; then the event is dropped with an error line, so one poison
  message cannot block the account forever; a subscriber that raises
  :class:`~bridge.session.subscribers.RetryLater` (what it needs is unreachable) gets it again
  after a capped backoff for as long as it takes, never counted toward dropping it;
* an event carries the raw message (``data``), so a subscriber that parked it can have it
  rebuilt later with :meth:`SessionClient.event_from_data`;
* bad input (bad base64/protobuf, bad signature, oversized, timestamp mismatch, kinds the
  client does not handle) is dropped by the poller with one log line.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from bridge.ids import SessionID
from bridge.session import dm_media
from bridge.session.dm_events import (
    DirectMessageEvent,
    EventCallback,
    EventStream,
    SentMessage,
    Subscribers,
    decode_inbox_message,
    make_event,
)
from bridge.session.dm_inbox import MAX_BACKOFF_S, InboxLoop
from bridge.session.dm_media import FileTransfer
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.keys import Identity, parse_session_id
from bridge.session.messages import (
    Attachment,
    DisappearingSettings,
    Expiry,
    ExpiryMode,
    LinkPreview,
    Message,
    MessageRequestResponse,
    Profile,
    Quote,
    Reaction,
    ReactionAction,
    ReadReceipt,
    Typing,
    Unsend,
    VisibleMessage,
)
from bridge.session.onetoone import MessageKeys
from bridge.session.outgoing import OutgoingMessage, encode_outgoing
from bridge.session.poller import PollStateStore
from bridge.session.snode import calls
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.rpc import SnodeClient
from bridge.session.swarm_polling import SwarmPolling

log = logging.getLogger("bridge.session.client")

__all__ = ["KEEP_AVATAR", "MAX_BACKOFF_S", "ExpiryLookup", "NoFileTransfer", "SessionClient"]

#: Storage TTL of typing indicators, as desktop sends them (§2.7, §6.12).
TYPING_TTL_MS = 20_000
#: How many of our own sent timestamps / sync-copy hashes are remembered (echo recognition).
_REMEMBERED_SENDS = 4096
#: ``expire`` takes at most this many hashes per request (§6.8).
_EXPIRE_BATCH = 30
#: The kinds that carry the conversation's disappearing setting (§2.14).
_EXPIRING = (VisibleMessage, Reaction, Unsend, MessageRequestResponse)

#: The disappearing-messages setting of the conversation with a Session ID (None: off).
ExpiryLookup = Callable[[str], Expiry | None]


class NoFileTransfer(InvalidInput):
    """An attachment or avatar operation on a client built without a file transfer."""


class _Keep(enum.Enum):
    AVATAR = enum.auto()


#: ``set_profile(name, KEEP_AVATAR)`` changes the name only.
KEEP_AVATAR = _Keep.AVATAR


class SessionClient:
    """Direct messages of one Session identity; see the module docstring for delivery."""

    def __init__(
        self,
        identity: Identity,
        snode: SnodeClient,
        state: PollStateStore,
        files: FileTransfer | None = None,
        *,
        profile: Profile | None = None,
        poll_interval: float = 5.0,
        sync_copies: bool = False,
        max_delivery_attempts: int = 5,
        retry_delay: float = 1.0,
        max_count: int | None = None,
        polling: SwarmPolling | None = None,
        expiry_for: ExpiryLookup | None = None,
    ) -> None:
        self._keys = MessageKeys.from_seed(identity.ed25519_seed)
        self._signer = Ed25519Signer.from_seed(identity.ed25519_seed)
        self.session_id: SessionID = identity.session_id
        self._snode = snode
        self._files = files
        self.profile = profile
        self._sync_copies = sync_copies
        #: Each conversation's disappearing-messages setting (§2.14), applied to what we send.
        self.expiry_for: ExpiryLookup = expiry_for or _no_expiry
        self._sent: collections.OrderedDict[int, str | None] = collections.OrderedDict()
        self._subscribers = Subscribers(
            str(self), max_attempts=max_delivery_attempts, retry_delay=retry_delay
        )
        self._inbox = InboxLoop(
            str(self),
            self._keys,
            self._signer,
            snode,
            state,
            self._subscribers,
            sent_by_us=self._sent.__contains__,
            poll_interval=poll_interval,
            max_count=max_count,
            polling=polling,
        )

    def __repr__(self) -> str:
        return f"SessionClient(session_id={self.session_id.value!r})"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling our own swarm, namespace 0 (a no-op if already running)."""
        await self._inbox.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop polling. An event being delivered is finished (and acknowledged) first,
        for up to ``timeout`` seconds; then the poller is cancelled. ``async for`` streams
        end."""
        await self._inbox.stop(timeout)

    def poll_now(self) -> None:
        """Poll at once instead of waiting for the rest of the interval."""
        self._inbox.poll_now()

    @property
    def poll_interval(self) -> float:
        """Seconds between polls while nothing arrives."""
        return self._inbox.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self._inbox.poll_interval = value

    @property
    def files(self) -> FileTransfer | None:
        """The file server this client uploads through (None: built without one), e.g. for a
        group picture set by the same identity."""
        return self._files

    # --- subscribing ----------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Deliver every event to ``callback``; returns a function that unsubscribes it."""
        return self._subscribers.subscribe(callback)

    def events(self) -> EventStream:
        """An ``async for`` stream of events; each is acknowledged when the next is asked."""
        return self._subscribers.stream()

    def event_from_data(self, data: bytes, hash_: str, expiry: int = 0) -> DirectMessageEvent:
        """The event of a message this client received before (its ``data``, as an event
        carried it): decoded and verified again, e.g. to retry it after it was parked.
        Raises :class:`~bridge.session.errors.SessionError` if it does not decode."""
        message = decode_inbox_message(self._keys, data)
        return make_event(
            self.session_id,
            message,
            hash_=hash_,
            expiry=expiry,
            data=data,
            from_this_client=message.timestamp in self._sent,
        )

    # --- sending ----------------------------------------------------------------------------

    async def send_text(
        self,
        to: SessionID | str,
        body: str | None,
        quote: Quote | None = None,
        attachments: Sequence[Attachment] = (),
        preview: LinkPreview | None = None,
    ) -> SentMessage:
        """Send a visible message (text, uploaded attachments, reply, link preview).

        Our profile rides along (§2.13). Returns the sent timestamp and storage hash.
        """
        return await self.send_prepared(self.prepare_text(to, body, quote, attachments, preview))

    def prepare_text(
        self,
        to: SessionID | str,
        body: str | None,
        quote: Quote | None = None,
        attachments: Sequence[Attachment] = (),
        preview: LinkPreview | None = None,
    ) -> OutgoingMessage:
        """Encode what :meth:`send_text` sends, for :meth:`send_prepared`."""
        message = VisibleMessage(
            body=body,
            attachments=tuple(attachments),
            quote=quote,
            previews=(preview,) if preview is not None else (),
            profile=self.profile,
        )
        return self._prepare(to, message)

    async def send_prepared(
        self, outgoing: OutgoingMessage, own_copy_hashes: Iterable[str] = ()
    ) -> SentMessage:
        """Store an encoded message. Storing the same :class:`OutgoingMessage` again (a retry
        after a crash) stores nothing new: it is the same message (see :mod:`.outgoing`).

        An unsend also deletes our own stored copies of its target (the sync copy this client
        remembers, plus ``own_copy_hashes``) from our swarm (§6.7).
        """
        timestamp, ttl_ms = outgoing.timestamp, outgoing.ttl_ms
        stored = await self._snode.store(
            outgoing.recipient, outgoing.data, ttl_ms=ttl_ms, timestamp=timestamp
        )
        self._remember(timestamp, None)
        sync_hash = None
        if outgoing.sync_data is not None:
            own = self.session_id.value
            sync = await self._snode.store(
                own, outgoing.sync_data, ttl_ms=ttl_ms, timestamp=timestamp
            )
            sync_hash = sync.hash
            self._remember(timestamp, sync_hash)
        if outgoing.unsend_target is not None:
            await self._delete_own_copies(outgoing.unsend_target, own_copy_hashes)
        return SentMessage(timestamp, stored.hash, sync_hash)

    async def upload_attachment(
        self, data: bytes, filename: str | None, content_type: str, caption: str | None = None
    ) -> Attachment:
        """Encrypt (§7.2) and upload ``data``; return the pointer to put in a message (§2.6)."""
        files = self._require_files()
        return await dm_media.upload_attachment(files, data, filename, content_type, caption)

    async def send_attachment(
        self,
        to: SessionID | str,
        data: bytes,
        filename: str | None,
        content_type: str,
        caption: str | None = None,
    ) -> SentMessage:
        """Upload ``data`` as an encrypted attachment and send it (caption as the body)."""
        pointer = await self.upload_attachment(data, filename, content_type, caption)
        return await self.send_text(to, caption, attachments=(pointer,))

    async def send_reaction(
        self,
        to: SessionID | str,
        target_author: SessionID | str,
        target_timestamp: int,
        emoji: str,
        remove: bool = False,
    ) -> SentMessage:
        """React to (or un-react from) the message ``(target_author, target_timestamp)``."""
        prepared = self.prepare_reaction(to, target_author, target_timestamp, emoji, remove)
        return await self.send_prepared(prepared)

    def prepare_reaction(
        self,
        to: SessionID | str,
        target_author: SessionID | str,
        target_timestamp: int,
        emoji: str,
        remove: bool = False,
    ) -> OutgoingMessage:
        """Encode what :meth:`send_reaction` sends, for :meth:`send_prepared`."""
        action = ReactionAction.REMOVE if remove else ReactionAction.REACT
        author = _session_id(target_author).value
        return self._prepare(to, Reaction(target_timestamp, author, emoji, action))

    async def send_unsend(
        self, to: SessionID | str, target_timestamp: int, own_copy_hashes: Iterable[str] = ()
    ) -> SentMessage:
        """Delete-for-everyone of *our* message sent at ``target_timestamp`` (§2.7).

        The request goes to the recipient; our own stored copies are deleted from our swarm
        (:meth:`send_prepared`). Messages in the recipient's swarm can only be deleted by the
        recipient's client.
        """
        return await self.send_prepared(self.prepare_unsend(to, target_timestamp), own_copy_hashes)

    def prepare_unsend(self, to: SessionID | str, target_timestamp: int) -> OutgoingMessage:
        """Encode what :meth:`send_unsend` sends, for :meth:`send_prepared`."""
        return self._prepare(to, Unsend(target_timestamp, self.session_id.value))

    async def _delete_own_copies(self, target_timestamp: int, hashes: Iterable[str]) -> None:
        found = set(hashes)
        sync_hash = self._sent.get(target_timestamp)
        if sync_hash:
            found.add(sync_hash)
        if found:
            try:
                await self._snode.delete(self._signer, sorted(found))
            except SessionError as e:
                log.warning("%s: could not delete our copy of %d: %s", self, target_timestamp, e)

    async def send_typing(self, to: SessionID | str, started: bool) -> SentMessage:
        """Typing indicator (§2.7), stored with desktop's 20 s TTL."""
        timestamp = self._next_timestamp()
        message = Typing(started=started, timestamp=timestamp)
        return await self._send(to, message, timestamp=timestamp, ttl_ms=TYPING_TTL_MS)

    async def send_message(
        self,
        to: SessionID | str,
        message: Message,
        *,
        timestamp: int | None = None,
        ttl_ms: int = calls.DEFAULT_TTL_MS,
    ) -> SentMessage:
        """Send any 1:1 ``message`` kind (e.g. a group invite or promotion, §2.7).

        ``timestamp`` is the envelope's sent timestamp; give it when something signed covers
        it (a group invite's admin signature does, docs/groups-v2.md §7.11). It must come from
        the shared clock (``snode.sent_clock.next_ms()``) so it stays unique; ``None`` takes
        the next one. The conversation's disappearing setting applies as for :meth:`send_text`.
        """
        return await self._send(to, message, timestamp=timestamp, ttl_ms=ttl_ms)

    async def send_read_receipt(
        self, to: SessionID | str, timestamps: Sequence[int]
    ) -> SentMessage:
        """Mark the messages sent at ``timestamps`` as read (§2.7)."""
        if not timestamps:
            raise InvalidInput("a read receipt needs at least one timestamp")
        return await self._send(to, ReadReceipt(tuple(timestamps)))

    async def accept_message_request(self, to: SessionID | str) -> SentMessage:
        """Accept ``to``'s message request, sending our profile along (§2.7, §2.13)."""
        return await self._send(to, MessageRequestResponse(is_approved=True, profile=self.profile))

    def prepare_disappearing(
        self, to: SessionID | str, mode: ExpiryMode, timer_seconds: int
    ) -> OutgoingMessage:
        """Encode a disappearing-messages settings change for the conversation with ``to``
        (§2.14), stored with the TTL of the new setting."""
        setting = DisappearingSettings(mode, timer_seconds)
        return self._prepare(to, setting, ttl_ms=_expiry_ttl(Expiry(mode, timer_seconds)))

    def own_copy_hashes(self, timestamps: Iterable[int]) -> list[str]:
        """The storage hashes of the sync copies this client stored for the messages sent at
        ``timestamps`` (those it still remembers)."""
        found = (self._sent.get(t) for t in timestamps)
        return [h for h in found if h]

    async def shorten_expiry(self, hashes: Sequence[str], expiry_ms: int) -> None:
        """Make messages in our own swarm expire at ``expiry_ms`` at the latest (``expire``
        with ``shorten``, §6.8): what a reader does in delete-after-read mode (§2.14)."""
        for start in range(0, len(hashes), _EXPIRE_BATCH):
            await self._snode.expire(
                self._signer, hashes[start : start + _EXPIRE_BATCH], expiry_ms, mode="shorten"
            )

    async def set_profile(
        self, name: str | None, avatar: bytes | _Keep | None = KEEP_AVATAR
    ) -> Profile:
        """Set the profile sent with our visible messages (§2.13).

        ``avatar`` is an image to encrypt (§7.4) and upload, ``None`` to remove the avatar, or
        :data:`KEEP_AVATAR`.
        """
        url: str | None = None
        key: bytes | None = None
        if isinstance(avatar, bytes):
            url, key = await dm_media.upload_avatar(self._require_files(), avatar)
        elif avatar is KEEP_AVATAR and self.profile is not None:
            url, key = self.profile.avatar_url, self.profile.avatar_key
        self.profile = Profile(name, url, key, int(time.time()))
        return self.profile

    # --- receiving helpers ------------------------------------------------------------------

    async def download_attachment(self, attachment: Attachment) -> bytes:
        """Download and decrypt a received attachment, checking MAC and digest (§7.2, §7.3)."""
        return await dm_media.download_attachment(self._require_files(), attachment)

    async def download_avatar(self, profile: Profile) -> bytes:
        """Download and decrypt a sender's avatar (§2.13)."""
        return await dm_media.download_avatar(self._require_files(), profile)

    # --- internals: sending -----------------------------------------------------------------

    def _next_timestamp(self) -> int:
        # The sent timestamp is a message's identity (§2.11). It comes from the snode client's
        # clock, which every identity of the bridge shares: Android drops a message whose
        # timestamp it saw before from any sender (.sent_clock). Network time keeps it within
        # the store's 10 s future limit (§6.5).
        return self._snode.sent_clock.next_ms()

    async def _send(
        self,
        to: SessionID | str,
        message: Message,
        *,
        timestamp: int | None = None,
        ttl_ms: int = calls.DEFAULT_TTL_MS,
    ) -> SentMessage:
        return await self.send_prepared(
            self._prepare(to, message, timestamp=timestamp, ttl_ms=ttl_ms)
        )

    def _prepare(
        self,
        to: SessionID | str,
        message: Message,
        *,
        timestamp: int | None = None,
        ttl_ms: int = calls.DEFAULT_TTL_MS,
    ) -> OutgoingMessage:
        timestamp = timestamp if timestamp is not None else self._next_timestamp()
        recipient = _session_id(to).value
        expiry = self.expiry_for(recipient)
        if expiry is not None and isinstance(message, _EXPIRING):
            # The conversation's setting rides on the message; after-send sets its TTL (§2.14).
            message = dataclasses.replace(message, expiry=expiry)
            ttl_ms = min(ttl_ms, _expiry_ttl(expiry))
        return encode_outgoing(
            self._keys, recipient, message, timestamp, ttl_ms, sync_copy=self._sync_copies
        )

    def _remember(self, timestamp: int, sync_hash: str | None) -> None:
        self._sent[timestamp] = sync_hash
        while len(self._sent) > _REMEMBERED_SENDS:
            self._sent.popitem(last=False)

    def _require_files(self) -> FileTransfer:
        if self._files is None:
            raise NoFileTransfer("this client has no file server configured")
        return self._files


def _no_expiry(_peer: str) -> Expiry | None:
    return None


def _expiry_ttl(expiry: Expiry) -> int:
    """Storage TTL of a message carrying ``expiry`` (§2.14): the timer for delete-after-send,
    else the default."""
    if expiry.mode == ExpiryMode.DELETE_AFTER_SEND and expiry.timer_seconds > 0:
        return expiry.timer_seconds * 1000
    return calls.DEFAULT_TTL_MS


def _session_id(value: SessionID | str) -> SessionID:
    return value if isinstance(value, SessionID) else parse_session_id(value)
