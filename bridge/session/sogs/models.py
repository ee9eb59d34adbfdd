"""Typed results of the community client (docs/session-protocol.md §5.4-§5.10).

Decoding of server JSON into these lives in :mod:`bridge.session.sogs.decode`. Items whose
content cannot be used (bad signature, undecodable ``Content``...) still come back, with
``content=None`` and the typed ``error``, so the caller can log one line, drop the item and
advance past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.ids import BlindedID, SessionID
from bridge.session.errors import SessionError
from bridge.session.messages import Message
from bridge.session.sogs.urls import CommunityServerRef

__all__ = [
    "BadItem",
    "CommunityMessage",
    "FileUpload",
    "InboxEntry",
    "InboxSent",
    "PollResult",
    "PostedMessage",
    "ReactionResult",
    "ReactionSummary",
    "ReactionUpdate",
    "RoomInfo",
    "RoomPollInfo",
    "RoomUpdate",
]

PostAuthor = SessionID | BlindedID


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """One emoji on a message: ``index`` orders emojis, ``reactors`` is capped by the poll."""

    emoji: str
    index: int
    count: int
    reactors: tuple[str, ...] = ()
    you: bool = False


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """The room object of ``GET /room/{room}`` (§5.4), the fields the bridge uses."""

    token: str
    name: str
    description: str
    info_updates: int
    message_sequence: int
    active_users: int
    image_id: int | None
    read: bool
    write: bool
    upload: bool


@dataclass(frozen=True, slots=True)
class RoomPollInfo:
    """``pollInfo`` (§5.4): ``details`` only when ``info_updates`` changed."""

    token: str
    active_users: int
    read: bool
    write: bool
    upload: bool
    details: RoomInfo | None


@dataclass(frozen=True, slots=True)
class CommunityMessage:
    """A message update from ``messages/since`` (new, edited or deleted, §5.5).

    ``content`` is the parsed ``Content`` when the signature verified and it decoded;
    otherwise ``error`` says why (``content`` and ``error`` are then ``None``/set). Deleted
    messages have ``deleted=True`` and neither. The dedup key for an edit is
    ``(id, seqno)``: every edit and deletion gets a new ``seqno``.

    A whisper (§5.5) is a post the server shows only to the user it names (``whisper_to``)
    and/or to the room's moderators (``whisper_mods``); ``whisper`` is true for either.
    """

    room: str
    id: int
    seqno: int
    author: PostAuthor | None
    posted: float
    edited: float | None
    deleted: bool
    content: Message | None
    error: SessionError | None
    reactions: tuple[ReactionSummary, ...] = ()
    data: bytes | None = field(default=None, repr=False)  # padded Content as signed
    whisper: bool = False
    whisper_to: str | None = None
    whisper_mods: bool = False


@dataclass(frozen=True, slots=True)
class ReactionUpdate:
    """A reaction-only change (``t=r``, §5.5): the full current reactions of a message."""

    room: str
    id: int
    seqno: int
    reactions: tuple[ReactionSummary, ...]


@dataclass(frozen=True, slots=True)
class BadItem:
    """An item too malformed to identify (no id/seqno); kept for logging."""

    where: str
    error: SessionError


@dataclass(frozen=True, slots=True)
class RoomUpdate:
    """One room's share of a poll.

    ``seqno`` is the cursor to commit once the items are stored (the highest seqno seen, or
    the old cursor); ``more`` means the server returned a full page, so poll again soon.
    ``error`` is set when the room's subrequests failed (e.g. :class:`RoomNotFound`).
    """

    token: str
    info: RoomPollInfo | None
    items: tuple[CommunityMessage | ReactionUpdate, ...]
    seqno: int
    more: bool = False
    bad_items: tuple[BadItem, ...] = ()
    error: SessionError | None = None


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A blinded DM (§5.10) from ``/inbox`` (``outgoing=False``) or ``/outbox``.

    ``sender`` is the real ``05`` Session ID learned from the decrypted payload.
    """

    id: int
    posted_at: float
    sender_blinded: BlindedID
    recipient: BlindedID
    outgoing: bool
    sender: SessionID | None
    content: Message | None
    error: SessionError | None


@dataclass(frozen=True, slots=True)
class PollResult:
    """Everything one poll (one ``/batch`` request) brought back from one server.

    ``inbox_id``/``outbox_id`` are the inbox cursors to commit, like ``RoomUpdate.seqno``;
    ``box_more`` means the inbox or the outbox returned a full page (poll again soon).
    """

    server: CommunityServerRef
    rooms: Mapping[str, RoomUpdate]
    inbox: tuple[InboxEntry, ...] = ()
    outbox: tuple[InboxEntry, ...] = ()
    inbox_id: int = 0
    outbox_id: int = 0
    bad_items: tuple[BadItem, ...] = ()
    inbox_error: SessionError | None = None
    box_more: bool = False

    @property
    def more(self) -> bool:
        """True when some room, the inbox or the outbox returned a full page."""
        return self.box_more or any(update.more for update in self.rooms.values())


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """What the server answered to a new post (§5.6)."""

    id: int
    seqno: int
    posted: float


@dataclass(frozen=True, slots=True)
class ReactionResult:
    """``changed`` is the server's ``added``/``removed``; ``seqno`` the message's new seqno."""

    changed: bool
    seqno: int


@dataclass(frozen=True, slots=True)
class FileUpload:
    """An uploaded room file: its id and the URL to put in ``AttachmentPointer.url`` (§5.8)."""

    id: int
    url: str


@dataclass(frozen=True, slots=True)
class InboxSent:
    """The server's answer to ``POST /inbox/{id}``."""

    id: int
    posted_at: float
