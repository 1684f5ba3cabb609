"""The shop's figures the console shows, from the read models (bounded queries only).

The funnel and the cart counts are exactly what ``shopstream query summary`` reports
(:func:`shopstream.queries.summary`); cancellations by stage come from the status
history (the status an order was in when it was cancelled); revenue over time sums
the orders paid (and not cancelled) per minute of ``paid_at``, over the last
``REVENUE_MINUTES`` minutes before the latest payment.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select

from shopstream.db.models import Order, OrderStatusHistory
from shopstream.db.read_queries import CartState, list_carts, summary
from shopstream.db.types import UtcDateTime

FUNNEL = ("PENDING_PAYMENT", "PAID", "CONFIRMED", "SHIPPED")
CANCELLED = "CANCELLED"
PAID_STATES = ("PAID", "CONFIRMED", "SHIPPED")
REVENUE_MINUTES = 30
CENT = Decimal("0.01")
ABANDONED_SHOWN = 8
TOP_PRODUCTS = 8

orders: Table = Order.__table__  # type: ignore[assignment]
history: Table = OrderStatusHistory.__table__  # type: ignore[assignment]


def shop_figures(connection: Connection) -> dict[str, Any]:
    """Funnel, cancellations by stage, revenue per minute, top products, carts."""
    figures = summary(connection, as_of=None, top=TOP_PRODUCTS)
    by_status: dict[str, int] = defaultdict(int)
    for count in figures.orders_by_status:
        by_status[count.status] += count.orders
    abandoned = (
        list_carts(
            connection, state=CartState.ABANDONED, as_of=figures.as_of, limit=ABANDONED_SHOWN
        )
        if figures.as_of is not None
        else []
    )
    return {
        "as_of": figures.as_of.isoformat() if figures.as_of else None,
        "orders_by_status": {status: by_status.get(status, 0) for status in (*FUNNEL, CANCELLED)},
        "cancelled_by_stage": cancelled_by_stage(connection),
        "revenue": [
            {
                "currency": r.currency,
                "revenue": str(r.revenue),
                "units_sold": r.units_sold,
                "revenue_cancelled": str(r.revenue_cancelled),
            }
            for r in figures.revenue
        ],
        "revenue_per_minute": revenue_per_minute(connection),
        "top_products": [
            {
                "sku": p.sku,
                "currency": p.currency,
                "units_sold": p.units_sold,
                "revenue": str(p.revenue),
                "orders": p.orders,
            }
            for p in figures.top_products
        ],
        "carts": {
            "active": figures.carts.active,
            "abandoned": figures.carts.abandoned,
            "checked_out": figures.carts.checked_out,
            "abandoned_value": [[c, str(v)] for c, v in figures.carts.abandoned_value],
            "abandoned_latest": [
                {
                    "cart_id": cart.cart_id,
                    "customer_id": cart.customer_id,
                    "items": cart.item_count,
                    "subtotal": str(cart.subtotal),
                    "currency": cart.currency,
                    "last_activity_at": cart.last_activity_at.isoformat(),
                }
                for cart in abandoned
            ],
        },
    }


def cancelled_by_stage(connection: Connection) -> dict[str, int]:
    """How many orders were cancelled from each status."""
    h = history.c
    rows = connection.execute(
        select(h.from_status, func.count())
        .where(h.to_status == CANCELLED)
        .group_by(h.from_status)
        .order_by(h.from_status)
    )
    return {str(stage or "-"): int(count) for stage, count in rows}


def revenue_per_minute(connection: Connection) -> list[dict[str, Any]]:
    """Revenue of the orders paid (not cancelled) per minute of ``paid_at``, per currency."""
    c = orders.c
    paid = c.status.in_(PAID_STATES)
    latest = connection.scalar(select(func.max(c.paid_at)).where(paid))
    if latest is None:
        return []
    since = bindparam("since", latest - timedelta(minutes=REVENUE_MINUTES), type_=UtcDateTime())
    minute: Any = (
        func.substr(c.paid_at, 1, 16)
        if connection.dialect.name == "sqlite"
        else func.to_char(func.timezone("UTC", c.paid_at), "YYYY-MM-DD HH24:MI")
    )
    rows = connection.execute(
        select(minute.label("minute"), c.currency, func.sum(c.total), func.count())
        .where(paid, c.paid_at >= since)
        .group_by(minute, c.currency)
        .order_by(minute, c.currency)
    )
    return [
        {
            "minute": str(at).replace(" ", "T") + "Z",
            "currency": currency,
            "revenue": str(Decimal(total or 0).quantize(CENT)),
            "orders": int(count),
        }
        for at, currency, total, count in rows
    ]
