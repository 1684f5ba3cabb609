"""service_outbox.event_id is a UUID: VARCHAR(36), as everywhere else

The services' tables take their column sizes from the domain limits
(``shopstream/domain/limits.py``) like the projections'. Every other size already
equalled its limit; the outbox's ``event_id`` was VARCHAR(64) where an event id is a
canonical UUID (``UUID_LENGTH``, 36 characters), which every stored row is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "event_id",
            existing_type=sa.String(length=64),
            type_=sa.String(length=36),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("service_outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "event_id",
            existing_type=sa.String(length=36),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
