"""dlq_redrives: which dead letters ``dlq redrive`` has re-produced, and where to

One row per dead letter (its DLQ coordinates are the key), written once the redriven
event is acknowledged, so redriving the same letters again sends none of them twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shopstream.db.types import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dlq_redrives",
        sa.Column("dlq_topic", sa.String(length=249), nullable=False),
        sa.Column("dlq_partition", sa.Integer(), nullable=False),
        sa.Column("dlq_offset", sa.BigInteger(), nullable=False),
        sa.Column("group_id", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("original_event_id", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("redriven_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dlq_topic", "dlq_partition", "dlq_offset"),
    )


def downgrade() -> None:
    op.drop_table("dlq_redrives")
