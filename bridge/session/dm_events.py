"""Typed events and results of :class:`bridge.session.client.SessionClient` (§3).

Section numbers (§n) refer to ``docs/session-protocol.md``. Everything here is pure except
:class:`EventStream`, the in-process hand-over of events to an ``async for`` subscriber.

A :class:`DirectMessageEvent` carries the decoded message as one of the
:mod:`bridge.session.messages` models; callers switch on it with ``match event.content:``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from bridge.ids import SessionID
from bridge.session.errors import DecodeError
from bridge.session.messages import (
    DisappearingSettings,
    Message,
    Reaction,
    UnsupportedContent,
    VisibleMessage,
)
from bridge.session.onetoone import DirectMessage, MessageKeys, decode_direct_message
from bridge.session.subscribers import SubscriberList

#: The DataMessage kinds whose sync copy names the real recipient in ``syncTarget`` (§3.3).
_SYNCED_DATA = (VisibleMessage, Reaction, DisappearingSettings)


class UnsupportedKind(DecodeError):
    """A well-formed message of a kind the client does not deliver (calls, configs...)."""


@dataclass(frozen=True)
class SentMessage:
    """What a send produced: the sent timestamp (the message's identity in Session, §2.11)
    and the storage hash in the recipient's swarm (§6.13); ``sync_hash`` is the hash of the
    sync copy in our own swarm when one was stored (§3.3)."""

    timestamp: int
    hash: str
    sync_hash: str | None = None


@dataclass(frozen=True)
class DirectMessageEvent:
    """A verified 1:1 message from our own swarm, namespace 0 (§3.2).

    ``sender`` is authenticated by the sender's signature; ``timestamp`` is the sent
    timestamp that quotes, reactions, receipts and unsends refer to (§2.11); ``hash`` is the
    storage hash, the de-duplication key. ``is_sync`` marks a copy of a message *we* sent
    (sender is our own account, §3.3), ``conversation`` is then its real recipient (the
    sync target, when the message carries one); ``from_this_client`` is true when this very
    client sent it (an echo of our own send).
    """

    sender: SessionID
    timestamp: int
    hash: str
    content: Message
    expiry: int = 0
    is_sync: bool = False
    conversation: SessionID | None = None
    from_this_client: bool = False
    # The raw message as retrieved (base64-decoded), for SessionClient.event_from_data.
    data: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class SwarmGapEvent:
    """A node of our swarm forgot our poll cursor: messages may have been lost (§6.6)."""

    node: str
    last_hash: str


ClientEvent: TypeAlias = DirectMessageEvent | SwarmGapEvent
#: An async callback subscriber; the poll cursor advances only after it returns.
EventCallback: TypeAlias = Callable[[ClientEvent], Awaitable[None]]


def decode_inbox_message(keys: MessageKeys, data: bytes) -> DirectMessage:
    """Decode raw (base64-decoded) ``retrieve`` data from namespace 0 (§3.2).

    Raises only :class:`~bridge.session.errors.SessionError` subclasses (the poller drops
    such messages with one log line): the errors of
    :func:`~bridge.session.onetoone.decode_direct_message` (bad base64/protobuf, oversized,
    bad signature, timestamp mismatch) and :class:`UnsupportedKind`.
    """
    # The snode layer hands out raw bytes; the 1:1 codec (and its size limit, which is
    # expressed on the base64 text as stored, §6.12) works on the stored base64 form.
    message = decode_direct_message(keys, base64.b64encode(data))
    if isinstance(message.content, UnsupportedContent):
        raise UnsupportedKind(f"unsupported content kind {message.content.kind!r}")
    return message


def make_event(
    own: SessionID,
    message: DirectMessage,
    *,
    hash_: str,
    expiry: int,
    from_this_client: bool,
    data: bytes = b"",
) -> DirectMessageEvent:
    """Build the event for a decoded message, recognising our own sync copies (§3.3)."""
    sender = SessionID(message.sender_session_id)
    is_sync = sender == own
    conversation: SessionID | None = sender
    if is_sync:
        content = message.content
        target = content.sync_target if isinstance(content, _SYNCED_DATA) else None
        conversation = _session_id_or_none(target)
    return DirectMessageEvent(
        sender=sender,
        timestamp=message.timestamp,
        hash=hash_,
        content=message.content,
        expiry=expiry,
        is_sync=is_sync,
        conversation=conversation,
        from_this_client=from_this_client and is_sync,
        data=data,
    )


def _session_id_or_none(text: str | None) -> SessionID | None:
    if text is None:
        return None
    try:
        return SessionID.parse(text)
    except ValueError:
        return None


class EventStream:
    """An ``async for`` view of a client's events, with hand-over acknowledgement.

    Each event is handed to the consumer and counts as *returned* when the consumer asks for
    the next one (or calls :meth:`aclose`): only then may the client acknowledge it. An event
    still waiting when the stream is closed counts as not delivered. The iteration ends when
    the client stops.
    """

    def __init__(self, on_close: Callable[[EventStream], None]) -> None:
        self._items: asyncio.Queue[tuple[ClientEvent, asyncio.Future[bool]] | None]
        self._items = asyncio.Queue()
        self._current: asyncio.Future[bool] | None = None
        self._on_close = on_close
        self.closed = False

    async def deliver(self, event: ClientEvent) -> bool:
        """Called by the client: hand ``event`` over; true once consumed, false if closed."""
        if self.closed:
            return False
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._items.put_nowait((event, done))
        return await done

    def finish(self) -> None:
        """Called by the client when it stops: the iteration ends after the current event."""
        self._items.put_nowait(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ClientEvent:
        self._release(True)
        if self.closed:
            raise StopAsyncIteration
        item = await self._items.get()
        if item is None:
            self.closed = True
            raise StopAsyncIteration
        event, self._current = item
        return event

    async def aclose(self) -> None:
        """Acknowledge the event in hand and stop receiving."""
        self._release(True)
        self.closed = True
        self._on_close(self)
        while not self._items.empty():
            item = self._items.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_result(False)

    def _release(self, consumed: bool) -> None:
        if self._current is not None and not self._current.done():
            self._current.set_result(consumed)
        self._current = None


class Subscribers:
    """A client's subscribers (callbacks and ``async for`` streams) and the delivery rules of
    :mod:`bridge.session.client` (:mod:`bridge.session.subscribers`)."""

    def __init__(self, owner: str, *, max_attempts: int = 5, retry_delay: float = 1.0) -> None:
        self._list: SubscriberList[ClientEvent] = SubscriberList(
            owner,
            describe,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            wait_for_taker=True,
        )
        self._streams: list[EventStream] = []

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Add an async callback; returns the function that removes it."""

        async def deliver(event: ClientEvent) -> bool:
            await callback(event)
            return True

        return self._list.add(deliver)

    def stream(self) -> EventStream:
        """Add an ``async for`` subscriber."""
        stream = EventStream(lambda s: self._list.remove(s.deliver))
        self._streams.append(stream)
        self._list.add(stream.deliver)
        return stream

    def finish_streams(self) -> None:
        """End every ``async for`` loop (the client stopped)."""
        for stream in self._streams:
            stream.finish()
            self._list.remove(stream.deliver)
        self._streams.clear()

    async def deliver(self, event: ClientEvent) -> None:
        """Deliver ``event`` to every subscriber; return once it may be acknowledged.

        Waits while there is no subscriber. If one raises, all get the event again after a
        backoff; after ``max_attempts`` failures the event is dropped with an error line
        (:class:`~bridge.session.subscribers.RetryLater` is retried without limit).
        """
        await self._list.deliver(event)


def describe(event: ClientEvent) -> str:
    """A one-line description for logs (no message content)."""
    if isinstance(event, DirectMessageEvent):
        return f"{type(event.content).__name__} {event.hash} from {event.sender.value[:10]}…"
    return f"gap on node {event.node[:10]}…"
