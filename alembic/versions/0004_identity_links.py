"""The identity map and the one-time link codes (docs/migration.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Hand-checked against ``bridge/db/models.py`` (tests/db/test_migrations.py compares them on
SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('link', 'bridge_identity')", name="ck_identity_link_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_identity_link"),
        sa.UniqueConstraint("session_id", name="uq_identity_link_session_id"),
    )
    op.create_index("ix_identity_link_mxid", "identity_link", ["mxid"])
    op.create_table(
        "link_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(), nullable=False),
        sa.Column("mxid", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("origin IN ('matrix', 'session')", name="ck_link_code_origin"),
        sa.PrimaryKeyConstraint("id", name="pk_link_code"),
    )
    op.create_index("ix_link_code_mxid", "link_code", ["mxid"])
    op.create_index("ix_link_code_session_id", "link_code", ["session_id"])
    op.create_index("ix_link_code_expires_at", "link_code", ["expires_at"])


def downgrade() -> None:
    op.drop_table("link_code")  # their indexes go with them
    op.drop_table("identity_link")
