"""The console's shop figures on SQLite and PostgreSQL: funnel, cancellations by stage,
revenue per minute of ``paid_at`` (dialect-specific minute buckets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from shopstream.console.shop import shop_figures
from shopstream.db.models import Order, OrderStatusHistory

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 29, 15, 0, 7, tzinfo=UTC)


def order(order_id: str, status: str, total: str, paid_minute: int | None) -> dict[str, Any]:
    paid_at = T0 + timedelta(minutes=paid_minute) if paid_minute is not None else None
    return {
        "order_id": order_id,
        "customer_id": "c-1",
        "status": status,
        "total": Decimal(total),
        "currency": "EUR",
        "cart_id": None,
        "coupon_code": None,
        "payment_id": None,
        "amount_paid": None,
        "carrier": None,
        "tracking_number": None,
        "cancel_reason": None,
        "created_at": T0,
        "paid_at": paid_at,
        "confirmed_at": None,
        "shipped_at": None,
        "cancelled_at": None,
        "updated_at": T0,
        "events_applied": 1,
    }


def cancel(order_id: str, stage: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "seq": 2,
        "from_status": stage,
        "to_status": "CANCELLED",
        "event_type": "OrderCancelled",
        "event_id": f"e-{order_id}",
        "occurred_at": T0,
    }


def test_shop_figures(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Order),
            [
                order("o1", "PENDING_PAYMENT", "10.00", None),
                order("o2", "PAID", "20.50", 0),
                order("o3", "SHIPPED", "5.25", 0),
                order("o4", "CONFIRMED", "7.00", 2),
                order("o5", "CANCELLED", "99.00", 1),
                order("o6", "CANCELLED", "1.00", None),
            ],
        )
        connection.execute(
            insert(OrderStatusHistory), [cancel("o5", "PAID"), cancel("o6", "PENDING_PAYMENT")]
        )
    with engine.connect() as connection:
        figures = shop_figures(connection)
    assert figures["orders_by_status"] == {
        "PENDING_PAYMENT": 1,
        "PAID": 1,
        "CONFIRMED": 1,
        "SHIPPED": 1,
        "CANCELLED": 2,
    }
    assert figures["cancelled_by_stage"] == {"PAID": 1, "PENDING_PAYMENT": 1}
    assert figures["revenue_per_minute"] == [
        {"minute": "2026-11-29T15:00Z", "currency": "EUR", "revenue": "25.75", "orders": 2},
        {"minute": "2026-11-29T15:02Z", "currency": "EUR", "revenue": "7.00", "orders": 1},
    ]
