"""SQLAlchemy models of the bridge database (portable between SQLite and PostgreSQL).

All timestamps are milliseconds since the Unix epoch (``BigInteger``). Every constraint and
index is named through the naming convention of :class:`Base`, so migrations can refer to
them stably.
Change a model only together with a new migration in ``alembic/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PORTAL_KINDS = ("community", "direct", "group")
OUTBOX_STATUSES = ("pending", "sending", "done", "failed")
# Where a parked item came from, and so where `retry` puts it back (docs/architecture.md §4.7).
DEAD_LETTER_PATHS = ("matrix", "outbox", "direct", "community")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class MatrixUser(Base):
    """A Matrix user the bridge knows (has talked to the bot or logged in)."""

    __tablename__ = "matrix_user"

    mxid: Mapped[str] = mapped_column(String, primary_key=True)
    management_room: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[int] = mapped_column(BigInteger)


class SessionLogin(Base):
    """A Session identity held by the bridge; ``mxid`` is NULL for the bot's own identity."""

    __tablename__ = "session_login"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mxid: Mapped[str | None] = mapped_column(
        ForeignKey("matrix_user.mxid", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str] = mapped_column(String, unique=True)
    encrypted_seed: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[str | None] = mapped_column(Text)
    is_bot: Mapped[bool]
    created_at: Mapped[int] = mapped_column(BigInteger)


class Portal(Base):
    """A Matrix room bridged to one Session conversation."""

    __tablename__ = "portal"
    __table_args__ = (
        UniqueConstraint("kind", "session_key"),
        CheckConstraint(_in("kind", PORTAL_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    session_key: Mapped[str] = mapped_column(String)
    mxid: Mapped[str | None] = mapped_column(String, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    avatar_mxc: Mapped[str | None] = mapped_column(String)
    avatar_hash: Mapped[str | None] = mapped_column(String)
    relay_enabled: Mapped[bool]
    relay_login_id: Mapped[int | None] = mapped_column(
        ForeignKey("session_login.id", ondelete="SET NULL"), index=True
    )
    encrypted: Mapped[bool]
    created_at: Mapped[int] = mapped_column(BigInteger)
    unbridged_at: Mapped[int | None] = mapped_column(BigInteger)


class Ghost(Base):
    """A Matrix puppet user standing for a Session account."""

    __tablename__ = "ghost"

    session_id: Mapped[str] = mapped_column(String, primary_key=True)
    mxid: Mapped[str] = mapped_column(String, unique=True)
    displayname: Mapped[str | None] = mapped_column(Text)
    avatar_mxc: Mapped[str | None] = mapped_column(String)
    avatar_hash: Mapped[str | None] = mapped_column(String)
    name_set: Mapped[bool]
    registered: Mapped[bool]
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Message(Base):
    """One Matrix event of a bridged message; a Session message may span several parts."""

    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("portal_id", "session_key", "part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"))
    mxid: Mapped[str] = mapped_column(String, unique=True)
    # NULL until an outbound message has been stored on the Session side.
    session_key: Mapped[str | None] = mapped_column(String)
    part: Mapped[int] = mapped_column(Integer)
    sender_session_id: Mapped[str | None] = mapped_column(String)
    sender_mxid: Mapped[str | None] = mapped_column(String)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    edit_count: Mapped[int] = mapped_column(Integer)


class Reaction(Base):
    """A bridged reaction (Matrix annotation event) to a bridged message."""

    __tablename__ = "reaction"
    __table_args__ = (UniqueConstraint("target_message_id", "sender", "emoji"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), index=True)
    mxid: Mapped[str] = mapped_column(String, unique=True)
    target_message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String)
    emoji: Mapped[str] = mapped_column(String)


class PollCursor(Base):
    """How far a poller has read one node/namespace or one community room."""

    __tablename__ = "poll_cursor"

    poller: Mapped[str] = mapped_column(String, primary_key=True)
    node: Mapped[str] = mapped_column(String, primary_key=True)
    namespace_or_room: Mapped[str] = mapped_column(String, primary_key=True)
    last_hash: Mapped[str | None] = mapped_column(String)
    seqno: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class InboundDedup(Base):
    """A durable marker that an inbound Session item has been processed."""

    __tablename__ = "inbound_dedup"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    portal_id: Mapped[int | None] = mapped_column(
        ForeignKey("portal.id", ondelete="CASCADE"), index=True
    )
    processed_at: Mapped[int] = mapped_column(BigInteger, index=True)


class Outbox(Base):
    """A pending delivery to the Session network."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portal.id", ondelete="CASCADE"), index=True)
    login_id: Mapped[int | None] = mapped_column(
        ForeignKey("session_login.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    matrix_event_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AppserviceTxn(Base):
    """An appservice transaction already received from the homeserver."""

    __tablename__ = "appservice_txn"

    # Synapse on SQLite reuses transaction ids after a restart, so the body hash is part of
    # the key: the same id with a different body is a different transaction.
    txn_id: Mapped[str] = mapped_column(String, primary_key=True)
    body_hash: Mapped[str] = mapped_column(String, primary_key=True)
    received_at: Mapped[int] = mapped_column(BigInteger, index=True)


class MatrixInboxEvent(Base):
    """A Matrix event accepted from the homeserver and not yet fully handled.

    Stored in the same database transaction as its ``appservice_txn`` row, before the
    homeserver gets its 200, and deleted once handled; a crash re-delivers what is left.
    """

    __tablename__ = "matrix_inbox"
    # Ids must never be reused: the pump remembers the highest id it has queued, and SQLite
    # without AUTOINCREMENT hands out max(id)+1 again once the newest row is deleted.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    txn_id: Mapped[str] = mapped_column(String)
    room_id: Mapped[str] = mapped_column(String)
    event: Mapped[str] = mapped_column(Text)
    received_at: Mapped[int] = mapped_column(BigInteger)


class KeyValue(Base):
    """Small bridge state (e.g. the bot's setup flags)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DeadLetter(Base):
    """An item that failed for good on one path, parked so that its conversation goes on.

    ``payload`` (JSON text) is what the path needs to take the item again (``retry``);
    ``what`` describes it for the admin, ``error`` says why it failed.
    """

    __tablename__ = "dead_letter"
    __table_args__ = (CheckConstraint(_in("path", DEAD_LETTER_PATHS), name="path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(16))
    portal_id: Mapped[int | None] = mapped_column(
        ForeignKey("portal.id", ondelete="SET NULL"), index=True
    )
    what: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)


# Identity map (docs/migration.md): a Session ID ↔ Matrix ID relation made by `link` or a
# bridge-made identity. Logins are not stored here: the repository adds them as kind "login".
LINK_KINDS = ("link", "bridge_identity")
# Who asked for a link code: a Matrix user (`link <Session ID>`) or a Session user
# (`link @them:server` sent to the bot's Session ID).
LINK_CODE_ORIGINS = ("matrix", "session")


class IdentityLink(Base):
    """One Session ID known to belong to one Matrix user (never a login: see the repo)."""

    __tablename__ = "identity_link"
    __table_args__ = (CheckConstraint(_in("kind", LINK_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String, unique=True)
    mxid: Mapped[str] = mapped_column(String, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class LinkCode(Base):
    """A one-time link code, stored only as its hash; ``used_at`` marks it spent."""

    __tablename__ = "link_code"
    __table_args__ = (CheckConstraint(_in("origin", LINK_CODE_ORIGINS), name="origin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String)
    mxid: Mapped[str] = mapped_column(String, index=True)
    session_id: Mapped[str] = mapped_column(String, index=True)
    # Where the Matrix side asked (told when the code arrives from Session), if it did.
    room_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


# Groups v2 (docs/groups-v2.md §7): what each identity the bridge runs holds of a group.
class GroupMembership(Base):
    """One identity's membership of one group: an invite (member auth data), a promotion
    (seed), whether it was accepted, and whether it ended (kicked, left, destroyed). Auth data
    and seed are stored encrypted with ``bridge.secrets_key`` (bridge/core/group/store.py)."""

    __tablename__ = "group_membership"

    session_id: Mapped[str] = mapped_column(String, primary_key=True)
    group_id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    auth_data: Mapped[bytes] = mapped_column(LargeBinary)
    seed: Mapped[bytes | None] = mapped_column(LargeBinary)
    inviter: Mapped[str] = mapped_column(String)
    invite_timestamp: Mapped[int] = mapped_column(BigInteger)
    accepted: Mapped[bool]
    removed: Mapped[bool]
    updated_at: Mapped[int] = mapped_column(BigInteger)


class GroupRawMessage(Base):
    """A keys/config message of a group swarm (ns 12-14) exactly as received, per identity,
    in the order received (``id``)."""

    __tablename__ = "group_raw_message"
    __table_args__ = (UniqueConstraint("session_id", "group_id", "hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String)
    group_id: Mapped[str] = mapped_column(String)
    hash: Mapped[str] = mapped_column(String)
    namespace: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    expiry: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
