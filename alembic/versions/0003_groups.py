"""Groups v2 state of each identity the bridge runs: memberships and the received
keys/config messages (docs/groups-v2.md §7, docs/architecture.md §3.3).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

``auth_data`` and ``seed`` hold only ciphertext (encrypted with ``bridge.secrets_key`` by
bridge/core/group/store.py, as login seeds are).

Hand-checked against ``bridge/db/models.py`` (tests/db/test_migrations.py compares them on
SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_membership",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("group_id", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("auth_data", sa.LargeBinary(), nullable=False),
        sa.Column("seed", sa.LargeBinary(), nullable=True),
        sa.Column("inviter", sa.String(), nullable=False),
        sa.Column("invite_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "group_id", name="pk_group_membership"),
    )
    op.create_table(
        "group_raw_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("group_id", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("namespace", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_group_raw_message"),
        sa.UniqueConstraint(
            "session_id",
            "group_id",
            "hash",
            name="uq_group_raw_message_session_id_group_id_hash",
        ),
    )


def downgrade() -> None:
    op.drop_table("group_raw_message")
    op.drop_table("group_membership")
