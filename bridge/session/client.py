"""One Session identity's direct messages: send, receive as typed events (§2, §3, §6).

Section numbers (§n) refer to ``session-protocol.md``. A :class:`SessionClient` sends 1:1
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
  message cannot block the account forever;
* bad input (bad base64/protobuf, bad signature, oversized, timestamp mismatch, kinds the
  client does not handle) is dropped by the poller with one log line.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from bridge.ids import SessionID
from bridge.session import dm_media
from bridge.session.dm_events import (
    EventCallback,
    EventStream,
    SentMessage,
    Subscribers,
    SwarmGapEvent,
    decode_inbox_message,
    make_event,
)
from bridge.session.dm_media import FileTransfer
from bridge.session.errors import InvalidInput, SessionError
from bridge.session.keys import Identity, parse_session_id
from bridge.session.messages import (
    Attachment,
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
from bridge.session.onetoone import DirectMessage, MessageKeys, encode_direct_message
from bridge.session.poller import Gap, PolledMessage, Poller, PollStateStore
from bridge.session.snode import calls
from bridge.session.snode.auth import Ed25519Signer
from bridge.session.snode.rpc import SnodeClient

log = logging.getLogger("bridge.session.client")

# Longest wait between polls while the Session network cannot be reached.
MAX_BACKOFF_S = 300.0


#: Storage TTL of typing indicators, as desktop sends them (§2.7, §6.12).
TYPING_TTL_MS = 20_000
#: How many of our own sent timestamps / sync-copy hashes are remembered (echo recognition).
_REMEMBERED_SENDS = 4096


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
    ) -> None:
        self._keys = MessageKeys.from_seed(identity.ed25519_seed)
        self._signer = Ed25519Signer.from_seed(identity.ed25519_seed)
        self.session_id: SessionID = identity.session_id
        self._snode = snode
        self._state = state
        self._files = files
        self.profile = profile
        self.poll_interval = poll_interval
        self._failures = 0
        self._sync_copies = sync_copies
        self._max_count = max_count
        self._last_timestamp = 0
        self._sent: collections.OrderedDict[int, str | None] = collections.OrderedDict()
        self._subscribers = Subscribers(
            str(self), max_attempts=max_delivery_attempts, retry_delay=retry_delay
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._delivering = False

    def __repr__(self) -> str:
        return f"SessionClient(session_id={self.session_id.value!r})"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling our own swarm, namespace 0 (a no-op if already running)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"session-dm-{self}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop polling. An event being delivered is finished (and acknowledged) first,
        for up to ``timeout`` seconds; then the poller is cancelled. ``async for`` streams
        end."""
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        if task is not None:
            if not self._delivering:
                task.cancel()  # polling or waiting: nothing in hand that needs finishing
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                log.warning("%s: delivery did not finish in %.1fs; cancelling", self, timeout)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribers.finish_streams()

    def poll_now(self) -> None:
        """Poll at once instead of waiting for the rest of the interval."""
        self._wake.set()

    # --- subscribing ----------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Deliver every event to ``callback``; returns a function that unsubscribes it."""
        return self._subscribers.subscribe(callback)

    def events(self) -> EventStream:
        """An ``async for`` stream of events; each is acknowledged when the next is asked."""
        return self._subscribers.stream()

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
        message = VisibleMessage(
            body=body,
            attachments=tuple(attachments),
            quote=quote,
            previews=(preview,) if preview is not None else (),
            profile=self.profile,
        )
        return await self._send(to, message)

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
        action = ReactionAction.REMOVE if remove else ReactionAction.REACT
        author = _session_id(target_author).value
        return await self._send(to, Reaction(target_timestamp, author, emoji, action))

    async def send_unsend(
        self, to: SessionID | str, target_timestamp: int, own_copy_hashes: Iterable[str] = ()
    ) -> SentMessage:
        """Delete-for-everyone of *our* message sent at ``target_timestamp`` (§2.7).

        The request goes to the recipient; our own stored copies (the sync copy this client
        remembers, plus ``own_copy_hashes``) are deleted from our swarm (§6.7). Messages in
        the recipient's swarm can only be deleted by the recipient's client.
        """
        sent = await self._send(to, Unsend(target_timestamp, self.session_id.value))
        hashes = set(own_copy_hashes)
        sync_hash = self._sent.get(target_timestamp)
        if sync_hash:
            hashes.add(sync_hash)
        if hashes:
            try:
                await self._snode.delete(self._signer, sorted(hashes))
            except SessionError as e:
                log.warning("%s: could not delete our copy of %d: %s", self, target_timestamp, e)
        return sent

    async def send_typing(self, to: SessionID | str, started: bool) -> SentMessage:
        """Typing indicator (§2.7), stored with desktop's 20 s TTL."""
        timestamp = self._next_timestamp()
        message = Typing(started=started, timestamp=timestamp)
        return await self._send(to, message, timestamp=timestamp, ttl_ms=TYPING_TTL_MS)

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
        # The sent timestamp is a message's identity (§2.11): unique and increasing per client.
        # Network time keeps it within the store's 10 s future limit (§6.5).
        self._last_timestamp = max(self._snode.clock.now_ms(), self._last_timestamp + 1)
        return self._last_timestamp

    async def _send(
        self,
        to: SessionID | str,
        message: Message,
        *,
        timestamp: int | None = None,
        ttl_ms: int = calls.DEFAULT_TTL_MS,
    ) -> SentMessage:
        recipient = _session_id(to).value
        timestamp = timestamp if timestamp is not None else self._next_timestamp()
        stored = await self._store(recipient, message, timestamp, ttl_ms)
        self._remember(timestamp, None)
        sync_hash = None
        own = self.session_id.value
        if self._sync_copies and recipient != own and isinstance(message, VisibleMessage | Unsend):
            # §3.3: our other devices learn what we sent from a copy in our own swarm.
            copy = message
            if isinstance(message, VisibleMessage):
                copy = dataclasses.replace(message, sync_target=recipient)
            sync_hash = await self._store(own, copy, timestamp, ttl_ms)
            self._remember(timestamp, sync_hash)
        return SentMessage(timestamp, stored, sync_hash)

    async def _store(self, account: str, message: Message, timestamp: int, ttl_ms: int) -> str:
        data = encode_direct_message(self._keys, account, message, timestamp)
        result = await self._snode.store(
            account, base64.b64decode(data), ttl_ms=ttl_ms, timestamp=timestamp
        )
        return result.hash

    def _remember(self, timestamp: int, sync_hash: str | None) -> None:
        self._sent[timestamp] = sync_hash
        while len(self._sent) > _REMEMBERED_SENDS:
            self._sent.popitem(last=False)

    def _require_files(self) -> FileTransfer:
        if self._files is None:
            raise NoFileTransfer("this client has no file server configured")
        return self._files

    # --- internals: receiving ---------------------------------------------------------------

    def _decode(self, data: bytes) -> DirectMessage:
        return decode_inbox_message(self._keys, data)

    def _new_poller(self) -> Poller[DirectMessage]:
        return Poller(
            self._snode, self._signer, self._state, self._decode, max_count=self._max_count
        )

    async def _run(self) -> None:
        poller = self._new_poller()
        while not self._stopping:
            try:
                await self._poll_and_deliver(poller)
            except asyncio.CancelledError:
                raise
            except Exception:
                # E.g. the poll-state store failed in ack. A fresh poller forgets what was in
                # flight and re-reads from the persisted cursors: re-delivery, never loss.
                log.exception("%s: receive loop failed; restarting the poller", self)
                poller = self._new_poller()
            if not poller.more and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_wait())
                self._wake.clear()

    def _next_wait(self) -> float:
        """The poll interval, doubled per failure in a row while the network is unreachable."""
        return min(self.poll_interval * float(2 ** min(self._failures, 10)), MAX_BACKOFF_S)

    async def _poll_and_deliver(self, poller: Poller[DirectMessage]) -> None:
        try:
            events = await poller.poll_once()
        except SessionError as e:
            self._failures += 1
            if self._failures & (self._failures - 1) == 0:  # 1st, 2nd, 4th, 8th... in a row
                log.warning("%s: poll failed (%d in a row): %s", self, self._failures, e)
            events, poller.more = [], False
        else:
            self._failures = 0
        for item in events:
            if self._stopping:
                return
            self._delivering = True
            try:
                await self._handle(poller, item)
            finally:
                self._delivering = False

    async def _handle(
        self, poller: Poller[DirectMessage], item: PolledMessage[DirectMessage] | Gap
    ) -> None:
        if isinstance(item, Gap):
            await self._subscribers.deliver(SwarmGapEvent(item.node, item.last_hash))
            return
        event = make_event(
            self.session_id,
            item.body,
            hash_=item.hash,
            expiry=item.expiry,
            from_this_client=item.body.timestamp in self._sent,
        )
        await self._subscribers.deliver(event)
        await poller.ack(item)


def _session_id(value: SessionID | str) -> SessionID:
    return value if isinstance(value, SessionID) else parse_session_id(value)
