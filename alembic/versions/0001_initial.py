"""Initial schema of the bridge database.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Hand-checked against ``bridge/db/models.py`` (tests/db/test_migrations.py compares them on
SQLite and PostgreSQL). Timestamps are milliseconds since the epoch; constraint names follow
the naming convention of ``bridge.db.models.Base``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_identity_tables()
    create_portal_tables()
    create_state_tables()


def create_identity_tables() -> None:
    op.create_table(
        "matrix_user",
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("management_room", sa.String(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("mxid", name="pk_matrix_user"),
    )
    op.create_table(
        "session_login",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("encrypted_seed", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mxid"],
            ["matrix_user.mxid"],
            name="fk_session_login_mxid_matrix_user",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_session_login"),
        sa.UniqueConstraint("session_id", name="uq_session_login_session_id"),
    )
    op.create_index("ix_session_login_mxid", "session_login", ["mxid"])
    op.create_table(
        "ghost",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_mxc", sa.String(), nullable=True),
        sa.Column("avatar_hash", sa.String(), nullable=True),
        sa.Column("name_set", sa.Boolean(), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_ghost"),
        sa.UniqueConstraint("mxid", name="uq_ghost_mxid"),
    )


def create_portal_tables() -> None:
    op.create_table(
        "portal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_key", sa.String(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("avatar_mxc", sa.String(), nullable=True),
        sa.Column("avatar_hash", sa.String(), nullable=True),
        sa.Column("relay_enabled", sa.Boolean(), nullable=False),
        sa.Column("relay_login_id", sa.Integer(), nullable=True),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("unbridged_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("kind IN ('community', 'direct', 'group')", name="ck_portal_kind"),
        sa.ForeignKeyConstraint(
            ["relay_login_id"],
            ["session_login.id"],
            name="fk_portal_relay_login_id_session_login",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_portal"),
        sa.UniqueConstraint("kind", "session_key", name="uq_portal_kind_session_key"),
        sa.UniqueConstraint("mxid", name="uq_portal_mxid"),
    )
    op.create_index("ix_portal_relay_login_id", "portal", ["relay_login_id"])
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("session_key", sa.String(), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("sender_session_id", sa.String(), nullable=True),
        sa.Column("sender_mxid", sa.String(), nullable=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("edit_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portal.id"], name="fk_message_portal_id_portal", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message"),
        sa.UniqueConstraint("mxid", name="uq_message_mxid"),
        sa.UniqueConstraint(
            "portal_id", "session_key", "part", name="uq_message_portal_id_session_key_part"
        ),
    )
    op.create_table(
        "reaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("target_message_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("emoji", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portal.id"], name="fk_reaction_portal_id_portal", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["target_message_id"],
            ["message.id"],
            name="fk_reaction_target_message_id_message",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reaction"),
        sa.UniqueConstraint("mxid", name="uq_reaction_mxid"),
        sa.UniqueConstraint(
            "target_message_id",
            "sender",
            "emoji",
            name="uq_reaction_target_message_id_sender_emoji",
        ),
    )
    op.create_index("ix_reaction_portal_id", "reaction", ["portal_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("login_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("matrix_event_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'done', 'failed')", name="ck_outbox_status"
        ),
        sa.ForeignKeyConstraint(
            ["login_id"],
            ["session_login.id"],
            name="fk_outbox_login_id_session_login",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portal.id"], name="fk_outbox_portal_id_portal", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_login_id", "outbox", ["login_id"])
    op.create_index("ix_outbox_portal_id", "outbox", ["portal_id"])
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])


def create_state_tables() -> None:
    op.create_table(
        "poll_cursor",
        sa.Column("poller", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("namespace_or_room", sa.String(), nullable=False),
        sa.Column("last_hash", sa.String(), nullable=True),
        sa.Column("seqno", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("poller", "node", "namespace_or_room", name="pk_poll_cursor"),
    )
    op.create_table(
        "inbound_dedup",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"],
            ["portal.id"],
            name="fk_inbound_dedup_portal_id_portal",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name="pk_inbound_dedup"),
    )
    op.create_index("ix_inbound_dedup_portal_id", "inbound_dedup", ["portal_id"])
    op.create_index("ix_inbound_dedup_processed_at", "inbound_dedup", ["processed_at"])
    op.create_table(
        "appservice_txn",
        sa.Column("txn_id", sa.String(), nullable=False),
        sa.Column("body_hash", sa.String(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("txn_id", "body_hash", name="pk_appservice_txn"),
    )
    op.create_index("ix_appservice_txn_received_at", "appservice_txn", ["received_at"])
    op.create_table(
        "matrix_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("txn_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_matrix_inbox"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "kv",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )


def downgrade() -> None:
    # Dependants first; dropping a table drops its indexes.
    for table in (
        "kv",
        "matrix_inbox",
        "appservice_txn",
        "inbound_dedup",
        "poll_cursor",
        "outbox",
        "reaction",
        "message",
        "portal",
        "ghost",
        "session_login",
        "matrix_user",
    ):
        op.drop_table(table)
