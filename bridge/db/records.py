"""Plain immutable records returned by the repositories (never ORM objects)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class PortalKind(StrEnum):
    """Which kind of Session conversation a portal bridges."""

    COMMUNITY = "community"
    DIRECT = "direct"
    GROUP = "group"


class OutboxStatus(StrEnum):
    """Lifecycle of an outbox row: pending → sending → done | failed (or back to pending)."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PortalRecord:
    """A portal. ``session_key`` is canonical per kind (see ``bridge/db/repos/portals.py``)."""

    id: int
    kind: PortalKind
    session_key: str
    mxid: str | None
    name: str | None
    topic: str | None
    avatar_mxc: str | None
    avatar_hash: str | None
    relay_enabled: bool
    relay_login_id: int | None
    encrypted: bool
    created_at: int
    unbridged_at: int | None


@dataclass(frozen=True, slots=True)
class GhostRecord:
    """A ghost user; ``updated_at`` is set by the repository on every write."""

    session_id: str
    mxid: str
    displayname: str | None = None
    avatar_mxc: str | None = None
    avatar_hash: str | None = None
    name_set: bool = False
    registered: bool = False
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class MatrixUserRecord:
    """A Matrix user known to the bridge."""

    mxid: str
    management_room: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """A Session identity; ``encrypted_seed`` is ciphertext, decrypted outside the db layer."""

    id: int
    mxid: str | None
    session_id: str
    encrypted_seed: bytes
    label: str | None
    is_bot: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One Matrix event of a bridged message."""

    id: int
    portal_id: int
    mxid: str
    session_key: str | None
    part: int
    sender_session_id: str | None
    sender_mxid: str | None
    timestamp: int
    edit_count: int


@dataclass(frozen=True, slots=True)
class ReactionRecord:
    """A bridged reaction."""

    id: int
    portal_id: int
    mxid: str
    target_message_id: int
    sender: str
    emoji: str


@dataclass(frozen=True, slots=True)
class CursorRecord:
    """A poll cursor."""

    poller: str
    node: str
    namespace_or_room: str
    last_hash: str | None
    seqno: int | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbox row; ``payload`` is JSON text owned by the sender."""

    id: int
    portal_id: int
    login_id: int | None
    kind: str
    payload: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: int
    last_error: str | None
    matrix_event_id: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class InboxEventRecord:
    """A stored Matrix event waiting to be handled; ``event`` is the decoded event JSON."""

    id: int
    room_id: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExpiringMessageRecord:
    """A message of the bot to redact by ``deadline`` (ms since the epoch), shown to ``owner``."""

    event_id: str
    room_id: str
    owner: str
    deadline: int


class DeadLetterPath(StrEnum):
    """The path a parked item failed on, and so where ``retry`` puts it back."""

    MATRIX = "matrix"  # a Matrix event of the inbox
    OUTBOX = "outbox"  # an outbox row (Matrix → Session)
    DIRECT = "direct"  # a Session direct message (Session → Matrix)
    COMMUNITY = "community"  # a community post or reaction update (Session → Matrix)


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A parked item: ``payload`` is JSON text the path needs to take it again."""

    id: int
    path: DeadLetterPath
    portal_id: int | None
    what: str
    payload: str
    error: str
    attempts: int
    created_at: int


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """What the metrics read at scrape time (``bridge/db/repos/stats.py``): each durable queue's
    depth and the time (ms) its oldest item arrived (None when empty), the parked items, the
    users' Session logins and the active portals per kind."""

    inbox_depth: int
    inbox_oldest_at: int | None
    outbox_depth: int
    outbox_oldest_at: int | None
    dead_letters: int
    logins: int
    portals: dict[PortalKind, int]
