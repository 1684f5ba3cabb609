"""``update_rows``: many rows' columns set by key, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError

from consumers.projections.order_state import orders
from shopstream.db.bulk import insert_rows, update_rows

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def order(order_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(c.name for c in orders.columns)
    row.update(
        order_id=order_id,
        customer_id="c",
        status="PENDING_PAYMENT",
        total=Decimal("10.00"),
        currency="EUR",
        created_at=AT,
        updated_at=AT,
        events_applied=1,
    )
    row.update(values)
    return row


def test_sets_each_rows_columns_and_only_those_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, orders, [order("a"), order("b"), order("c")])
    changed = [
        order("a", status="PAID", amount_paid=Decimal("10.00"), paid_at=AT, events_applied=2),
        order("c", status="CANCELLED", cancel_reason="r", cancelled_at=None, events_applied=3),
    ]
    columns = (
        "status",
        "amount_paid",
        "paid_at",
        "cancel_reason",
        "cancelled_at",
        "events_applied",
    )
    with engine.begin() as connection:
        update_rows(connection, orders, "order_id", columns, changed)
        update_rows(connection, orders, "order_id", columns, [])
    with engine.connect() as connection:
        found = {
            row.order_id: row
            for row in connection.execute(select(orders).order_by(orders.c.order_id))
        }
    assert (found["a"].status, found["a"].amount_paid, found["a"].events_applied) == (
        "PAID",
        Decimal("10.00"),
        2,
    )
    assert found["a"].paid_at == AT
    assert (found["b"].status, found["b"].amount_paid, found["b"].paid_at) == (
        "PENDING_PAYMENT",
        None,
        None,
    )
    assert (found["c"].status, found["c"].cancel_reason, found["c"].cancelled_at) == (
        "CANCELLED",
        "r",
        None,
    )


def test_a_column_that_is_null_in_every_row(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, orders, [order("a", carrier="DHL", shipped_at=AT)])
    with engine.begin() as connection:
        update_rows(connection, orders, "order_id", ("carrier", "shipped_at"), [order("a")])
    with engine.connect() as connection:
        row = connection.execute(select(orders.c.carrier, orders.c.shipped_at)).one()
    assert tuple(row) == (None, None)


def test_text_of_any_character_and_exact_values_arrive_unchanged(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, orders, [order("a")])
    reason = "quote \" backslash \\ comma , brace {} apostrophe ' unicode é ✓"
    at = datetime(2026, 5, 6, 7, 8, 9, 1000, tzinfo=UTC)
    changed = order("a", cancel_reason=reason, amount_paid=Decimal("9999999999.99"), paid_at=at)
    with engine.begin() as connection:
        columns = ("cancel_reason", "amount_paid", "paid_at")
        update_rows(connection, orders, "order_id", columns, [changed])
    with engine.connect() as connection:
        row = connection.execute(
            select(orders.c.cancel_reason, orders.c.amount_paid, orders.c.paid_at)
        ).one()
    assert tuple(row) == (reason, Decimal("9999999999.99"), at)


def test_a_value_the_column_cannot_hold_is_refused_as_an_insert_would_be(
    engine: Engine, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with engine.begin() as connection:
        insert_rows(connection, orders, [order("a")])
    with pytest.raises(DataError), engine.begin() as connection:
        update_rows(
            connection,
            orders,
            "order_id",
            ("cancel_reason",),
            [order("a", cancel_reason="x" * 501)],
        )
