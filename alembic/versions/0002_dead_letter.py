"""The dead-letter table: items parked after a permanent failure (docs/architecture.md §4.7).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10

Hand-checked against ``bridge/db/models.py`` (tests/db/test_migrations.py compares them on
SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=True),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "path IN ('matrix', 'outbox', 'direct', 'community')", name="ck_dead_letter_path"
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"],
            ["portal.id"],
            name="fk_dead_letter_portal_id_portal",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter"),
    )
    op.create_index("ix_dead_letter_portal_id", "dead_letter", ["portal_id"])
    op.create_index("ix_dead_letter_created_at", "dead_letter", ["created_at"])


def downgrade() -> None:
    op.drop_table("dead_letter")  # its indexes go with it
