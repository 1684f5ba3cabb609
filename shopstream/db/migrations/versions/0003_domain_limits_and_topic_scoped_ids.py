"""domain limits and topic-scoped processed ids

* Columns take their sizes from ``shopstream/domain/limits.py``: event ids are
  ``VARCHAR(36)`` (a UUID); sums over history (cart subtotal, product revenue and
  cancelled revenue, customer spend) are ``NUMERIC(18, 2)`` instead of ``(12, 2)``
  (SQLite keeps its integer cents: the type is the same there); counts of units and
  orders are ``BIGINT``.
* ``processed_events`` gains ``topic`` (the real topic name, prefix included) in its
  primary key, so two topic prefixes sharing a database never skip each other's
  events. Existing rows are kept, once for each topic the group has offsets for
  (``consumer_offsets``), which keeps exactly the deduplication they gave before.

Every row is kept on both databases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shopstream.db.types import Money

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table → columns that hold sums over history (NUMERIC(12, 2) → NUMERIC(18, 2))
SUMS = {
    "carts": ("subtotal",),
    "product_sales": ("revenue", "revenue_cancelled"),
    "customer_stats": ("total_spent",),
}
#: table → counts (INTEGER → BIGINT)
COUNTS = {
    "carts": ("item_count",),
    "cart_items": ("quantity",),
    "product_sales": ("units_sold", "orders", "units_cancelled"),
    "customer_stats": ("orders_placed", "orders_paid", "orders_cancelled"),
}
OLD_EVENT_ID = sa.String(64)
NEW_EVENT_ID = sa.String(36)


def _widen(narrow: bool) -> None:
    """Sums and counts to their new (or, ``narrow``, their old) types."""
    for table in sorted(SUMS.keys() | COUNTS.keys()):
        with op.batch_alter_table(table) as batch:
            for column in SUMS.get(table, ()):
                old, new = Money(), Money(18)
                batch.alter_column(
                    column,
                    type_=old if narrow else new,
                    existing_type=new if narrow else old,
                    existing_nullable=False,
                )
            for column in COUNTS.get(table, ()):
                batch.alter_column(
                    column,
                    type_=sa.Integer() if narrow else sa.BigInteger(),
                    existing_type=sa.BigInteger() if narrow else sa.Integer(),
                    existing_nullable=False,
                )


def _processed_events(event_id: sa.String, *, with_topic: bool) -> None:
    """Rebuild ``processed_events`` with (or without) ``topic``, copying its rows."""
    columns = [
        sa.Column("group_id", sa.String(100), nullable=False),
        *([sa.Column("topic", sa.String(249), nullable=False)] if with_topic else []),
        sa.Column("event_id", event_id, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    ]
    key = ["group_id", "topic", "event_id"] if with_topic else ["group_id", "event_id"]
    op.create_table(
        "processed_events_new",
        *columns,
        sa.PrimaryKeyConstraint(*key, name="processed_events_new_pkey"),
    )
    if with_topic:
        op.execute(
            "INSERT INTO processed_events_new (group_id, topic, event_id, outcome) "
            "SELECT p.group_id, o.topic, p.event_id, p.outcome FROM processed_events p "
            "JOIN (SELECT DISTINCT group_id, topic FROM consumer_offsets) o "
            "ON o.group_id = p.group_id"
        )
    else:
        op.execute(
            "INSERT INTO processed_events_new (group_id, event_id, outcome) "
            "SELECT group_id, event_id, MIN(outcome) FROM processed_events "
            "GROUP BY group_id, event_id"
        )
    op.drop_table("processed_events")
    op.rename_table("processed_events_new", "processed_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX processed_events_new_pkey RENAME TO processed_events_pkey")


def upgrade() -> None:
    _widen(narrow=False)
    with op.batch_alter_table("order_status_history") as batch:
        batch.alter_column(
            "event_id", type_=NEW_EVENT_ID, existing_type=OLD_EVENT_ID, existing_nullable=False
        )
    _processed_events(NEW_EVENT_ID, with_topic=True)


def downgrade() -> None:
    _processed_events(OLD_EVENT_ID, with_topic=False)
    with op.batch_alter_table("order_status_history") as batch:
        batch.alter_column(
            "event_id", type_=OLD_EVENT_ID, existing_type=NEW_EVENT_ID, existing_nullable=False
        )
    _widen(narrow=True)
