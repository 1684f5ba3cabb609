"""Migrations: the head schema is exactly the models', and upgrades keep the rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, insert, inspect, select, text

from shopstream.db.engine import make_engine
from shopstream.db.migrate import current_revision, head_revision, upgrade
from shopstream.db.models import (
    Base,
    Cart,
    Order,
    OrderLineRow,
    OrderStatusHistory,
    ProcessedEvent,
)
from shopstream.domain.limits import MAX_SUM

ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLineRow.__table__  # type: ignore[assignment]
HISTORY: Table = OrderStatusHistory.__table__  # type: ignore[assignment]
CARTS: Table = Cart.__table__  # type: ignore[assignment]
PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[assignment]

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def test_head_schema_is_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_upgrade_from_0001_keeps_rows_and_drops_the_foreign_keys(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    order = {
        "order_id": "o-1", "customer_id": "c-1", "status": "PAID", "total": Decimal("12.50"),
        "currency": "EUR", "created_at": at, "updated_at": at, "events_applied": 2,
    }  # fmt: skip
    line = {"order_id": "o-1", "line_no": 1, "sku": "SKU-1", "quantity": 5,
            "unit_price": Decimal("2.50")}  # fmt: skip
    history = {"order_id": "o-1", "seq": 1, "to_status": "PENDING_PAYMENT",
               "event_type": "OrderCreated", "event_id": "e-1", "occurred_at": at}  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(ORDERS), order)
        connection.execute(insert(LINES), line)
        connection.execute(insert(HISTORY), history)

    assert upgrade(engine) == head_revision()

    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert inspect(connection).get_foreign_keys("order_lines") == []
        assert inspect(connection).get_indexes("order_lines")[0]["column_names"] == ["sku"]
        lines = connection.execute(select(LINES)).mappings().all()
        steps = connection.execute(select(HISTORY)).mappings().all()
    engine.dispose()
    assert [dict(row) for row in lines] == [line]
    assert [dict(row) for row in steps] == [{**history, "from_status": None}]


def test_upgrade_from_0002_keeps_rows_scopes_processed_ids_and_widens_sums(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0002")
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    event_id = "0190f0e0-0000-7000-8000-000000000001"
    with engine.begin() as connection:
        for topic in ("a.order-events", "b.order-events"):
            connection.execute(
                text("INSERT INTO consumer_offsets VALUES ('order-state', :t, 0, 5)"), {"t": topic}
            )
        connection.execute(
            text("INSERT INTO processed_events VALUES ('order-state', :e, 'applied')"),
            {"e": event_id},
        )
        connection.execute(
            text("INSERT INTO processed_events VALUES ('lost-group', 'e-2', 'applied')")
        )
    cart = {
        "cart_id": "c-1", "customer_id": "u-1", "status": "ACTIVE", "item_count": 3,
        "subtotal": Decimal("12.50"), "currency": "EUR", "order_id": None,
        "created_at": at, "last_activity_at": at, "checked_out_at": None,
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(CARTS), cart)

    assert upgrade(engine) == head_revision()

    big = {**cart, "cart_id": "c-2", "item_count": 2**40, "subtotal": MAX_SUM}
    with engine.begin() as connection:
        connection.execute(insert(CARTS), big)
        carts = connection.execute(select(CARTS).order_by(CARTS.c.cart_id)).mappings().all()
        processed = connection.execute(
            select(PROCESSED.c.topic, PROCESSED.c.event_id).order_by(PROCESSED.c.topic)
        ).all()
    engine.dispose()
    assert [dict(row) for row in carts] == [cart, big]
    # once per topic the group has offsets for: the same deduplication as before
    assert [tuple(row) for row in processed] == [
        ("a.order-events", event_id),
        ("b.order-events", event_id),
    ]
