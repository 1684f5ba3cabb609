"""read models without foreign keys: child rows no longer checked against their parent

Each projection is the only writer of its tables, writes parents before children in
the same transaction, and a rebuild empties children first; the tests compare every
table with an independent reference. The per-row foreign-key checks (a trigger per
row on PostgreSQL) cost about a third of PostgreSQL's time when ``order-state``
writes a batch, and protect nothing the projections do not already guarantee.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: child table → (column, parent table, parent column)
CHILDREN = {
    "cart_items": ("cart_id", "carts", "cart_id"),
    "order_lines": ("order_id", "orders", "order_id"),
    "order_status_history": ("order_id", "orders", "order_id"),
    "sales_order_lines": ("order_id", "sales_orders", "order_id"),
}
#: names for the (unnamed) foreign keys revision 0001 created, so SQLite's batch mode
#: can find them
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _fk_name(child: str) -> str:
    column, parent, _ = CHILDREN[child]
    return f"fk_{child}_{column}_{parent}"


def upgrade() -> None:
    bind = op.get_bind()
    for child in CHILDREN:
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(child, recreate="always", naming_convention=NAMING) as batch:
                batch.drop_constraint(_fk_name(child), type_="foreignkey")
        else:
            for key in sa.inspect(bind).get_foreign_keys(child):
                op.drop_constraint(key["name"] or _fk_name(child), child, type_="foreignkey")


def downgrade() -> None:
    for child, (column, parent, parent_column) in CHILDREN.items():
        with op.batch_alter_table(child) as batch:
            batch.create_foreign_key(
                _fk_name(child), parent, [column], [parent_column], ondelete="CASCADE"
            )
