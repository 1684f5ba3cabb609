"""A small, obviously-correct reference model of every consumer group's tables.

It folds the produced events, one at a time and per aggregate, into the rows each
group's tables must hold, with no batching, no SQL and no code shared with the
projections (the state machine is written out again here). Tests compare it with
what the daemons wrote.

Usage::

    expected = expected_for("sales-projection", produced_events)
    assert dump_group(engine, "sales-projection") == expected.tables
    assert processed_outcomes(engine, "sales-projection") == expected.outcomes

``events`` are the events in the order they were produced. Only the relative order
of one aggregate's events matters (they share a partition); events of other topics
are ignored. Re-sent events (an ``event_id`` seen before) are skipped, like the
runtime does: the first copy wins, whether it was applied or refused.

The database refuses carts and orders of :data:`~tests.support.poison.REFUSED_CUSTOMER`
when the test installed its trigger (the fault suite does): the event that would
create one is dead-lettered as ``db-rejected``, and the cart's or order's later events
then refer to an unknown cart or order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select

from shopstream.db.models import Base
from shopstream.events import (
    CART_EVENTS,
    ORDER_EVENTS,
    CartCheckedOut,
    CartItemAdded,
    CartItemRemoved,
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderPaid,
    OrderShipped,
)
from tests.support.poison import REFUSED_CUSTOMER

Row = dict[str, Any]
Tables = dict[str, list[Row]]

APPLIED = "applied"
DEAD_LETTERED = "dead-lettered"

#: The tables each group owns (what a rebuild empties and replays).
GROUP_TABLES: dict[str, tuple[str, ...]] = {
    "order-state": ("orders", "order_lines", "order_status_history"),
    "cart-projection": ("carts", "cart_items"),
    "sales-projection": ("sales_orders", "sales_order_lines", "product_sales", "customer_stats"),
}
GROUPS = tuple(GROUP_TABLES)


@dataclass
class Expected:
    """What one group's tables and its processed events must hold."""

    group_id: str
    tables: Tables
    """Table name → rows (dicts of every column), sorted by primary key."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """event_id → ``applied`` | ``dead-lettered`` (like ``processed_events``)."""
    reasons: dict[str, str] = field(default_factory=dict)
    """event_id → refusal reason, for the dead-lettered ones."""

    @property
    def rejected(self) -> set[str]:
        return set(self.reasons)


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def first_copies(events: Iterable[DomainEvent], kinds: tuple[type, ...]) -> list[DomainEvent]:
    """The events of ``kinds``, each ``event_id`` once (the first copy)."""
    seen: set[str] = set()
    kept = []
    for event in events:
        if isinstance(event, kinds) and event.event_id not in seen:
            seen.add(event.event_id)
            kept.append(event)
    return kept


def _fold(
    group_id: str,
    events: Iterable[DomainEvent],
    kinds: tuple[type, ...],
    step: Callable[[DomainEvent], None],
) -> Expected:
    expected = Expected(group_id, {})
    for event in first_copies(events, kinds):
        try:
            step(event)
        except Refused as refused:
            expected.outcomes[event.event_id] = DEAD_LETTERED
            expected.reasons[event.event_id] = refused.reason
        else:
            expected.outcomes[event.event_id] = APPLIED
    return expected


def _sorted(rows: Iterable[Row], *key: str) -> list[Row]:
    return sorted(rows, key=lambda row: tuple(row[name] for name in key))


# -- the order state machine (written out again, on purpose) ----------------------------

ALLOWED_FROM = {
    "OrderPaid": ("PENDING_PAYMENT",),
    "OrderConfirmed": ("PAID",),
    "OrderShipped": ("CONFIRMED",),
    "OrderCancelled": ("PENDING_PAYMENT", "PAID", "CONFIRMED"),
}
LEADS_TO = {
    "OrderPaid": "PAID",
    "OrderConfirmed": "CONFIRMED",
    "OrderShipped": "SHIPPED",
    "OrderCancelled": "CANCELLED",
}


def check_order_event(status: str | None, event: DomainEvent, total: Decimal, currency: str) -> str:
    """The status after ``event``, or Refused with order-state's reason."""
    if isinstance(event, OrderCreated):
        if status is not None:
            raise Refused("duplicate-order")
        if event.customer_id == REFUSED_CUSTOMER:
            raise Refused("db-rejected")
        return "PENDING_PAYMENT"
    if status is None:
        raise Refused("unknown-order")
    if status not in ALLOWED_FROM[event.event_type]:
        raise Refused("illegal-transition")
    if isinstance(event, OrderPaid) and (event.amount != total or event.currency != currency):
        raise Refused("payment-mismatch")
    return LEADS_TO[event.event_type]


# -- order-state ---------------------------------------------------------------------


def expected_order_state(events: Iterable[DomainEvent]) -> Expected:
    orders: dict[str, Row] = {}
    lines: list[Row] = []
    history: list[Row] = []

    def step(event: DomainEvent) -> None:
        order = orders.get(event.key)
        status = order["status"] if order else None
        total = order["total"] if order else Decimal(0)
        currency = order["currency"] if order else ""
        target = check_order_event(status, event, total, currency)
        at = event.occurred_at
        if isinstance(event, OrderCreated):
            order = _new_order(event)
            orders[event.order_id] = order
            lines.extend(
                {
                    "order_id": event.order_id,
                    "line_no": number,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                }
                for number, line in enumerate(event.lines, start=1)
            )
        assert order is not None
        if isinstance(event, OrderPaid):
            order.update(payment_id=event.payment_id, amount_paid=event.amount, paid_at=at)
        elif isinstance(event, OrderConfirmed):
            order["confirmed_at"] = at
        elif isinstance(event, OrderShipped):
            order.update(
                carrier=event.carrier, tracking_number=event.tracking_number, shipped_at=at
            )
        elif isinstance(event, OrderCancelled):
            order.update(cancel_reason=event.reason, cancelled_at=at)
        order["status"] = target
        order["updated_at"] = at
        order["events_applied"] += 1
        history.append(
            {
                "order_id": event.key,
                "seq": order["events_applied"],
                "from_status": status,
                "to_status": target,
                "event_type": event.event_type,
                "event_id": event.event_id,
                "occurred_at": at,
            }
        )

    expected = _fold("order-state", events, ORDER_EVENTS, step)
    expected.tables = {
        "orders": _sorted(orders.values(), "order_id"),
        "order_lines": _sorted(lines, "order_id", "line_no"),
        "order_status_history": _sorted(history, "order_id", "seq"),
    }
    return expected


def _new_order(event: OrderCreated) -> Row:
    return {
        "order_id": event.order_id,
        "customer_id": event.customer_id,
        "status": "PENDING_PAYMENT",
        "total": event.total,
        "currency": event.currency,
        "cart_id": event.cart_id,
        "coupon_code": event.coupon_code,
        "payment_id": None,
        "amount_paid": None,
        "carrier": None,
        "tracking_number": None,
        "cancel_reason": None,
        "created_at": event.occurred_at,
        "paid_at": None,
        "confirmed_at": None,
        "shipped_at": None,
        "cancelled_at": None,
        "updated_at": event.occurred_at,
        "events_applied": 0,
    }


# -- cart-projection -----------------------------------------------------------------


def expected_carts(events: Iterable[DomainEvent]) -> Expected:
    carts: dict[str, Row] = {}
    items: dict[str, dict[str, Row]] = {}

    def step(event: DomainEvent) -> None:
        cart = carts.get(event.key)
        if cart is None:
            if not isinstance(event, CartItemAdded):
                raise Refused("unknown-cart")
            if event.customer_id == REFUSED_CUSTOMER:
                raise Refused("db-rejected")
            cart = {
                "cart_id": event.cart_id,
                "customer_id": event.customer_id,
                "status": "ACTIVE",
                "item_count": 0,
                "subtotal": Decimal("0.00"),
                "currency": event.currency,
                "order_id": None,
                "created_at": event.occurred_at,
                "last_activity_at": event.occurred_at,
                "checked_out_at": None,
            }
        lines = items.get(event.key, {})
        _cart_step(cart, lines, event)
        carts[event.key] = cart
        items[event.key] = lines
        cart["item_count"] = sum(line["quantity"] for line in lines.values())
        cart["subtotal"] = sum(
            (line["quantity"] * line["unit_price"] for line in lines.values()), Decimal("0.00")
        )
        cart["last_activity_at"] = max(cart["last_activity_at"], event.occurred_at)

    expected = _fold("cart-projection", events, CART_EVENTS, step)
    expected.tables = {
        "carts": _sorted(carts.values(), "cart_id"),
        "cart_items": _sorted(
            (line for lines in items.values() for line in lines.values()), "cart_id", "sku"
        ),
    }
    return expected


def _cart_step(cart: Row, lines: dict[str, Row], event: DomainEvent) -> None:
    """Check then change: a refused event raises before anything changes."""
    if cart["status"] == "CHECKED_OUT":
        raise Refused("cart-checked-out")
    if getattr(event, "customer_id", None) != cart["customer_id"]:
        raise Refused("customer-mismatch")
    if isinstance(event, CartItemAdded):
        if event.currency != cart["currency"]:
            raise Refused("currency-mismatch")
        held = lines[event.sku]["quantity"] if event.sku in lines else 0
        lines[event.sku] = {
            "cart_id": event.cart_id,
            "sku": event.sku,
            "quantity": held + event.quantity,
            "unit_price": event.unit_price,
        }
    elif isinstance(event, CartItemRemoved):
        if event.sku not in lines:
            raise Refused("item-not-in-cart")
        if event.quantity > lines[event.sku]["quantity"]:
            raise Refused("insufficient-quantity")
        lines[event.sku]["quantity"] -= event.quantity
        if lines[event.sku]["quantity"] == 0:
            del lines[event.sku]
    elif isinstance(event, CartCheckedOut):
        if not lines:
            raise Refused("empty-cart")
        cart.update(status="CHECKED_OUT", order_id=event.order_id, checked_out_at=event.occurred_at)


# -- sales-projection ----------------------------------------------------------------


def expected_sales(events: Iterable[DomainEvent]) -> Expected:
    orders: dict[str, Row] = {}
    order_lines: dict[str, list[Row]] = {}
    products: dict[tuple[str, str], Row] = {}
    customers: dict[tuple[str, str], Row] = {}

    def product(sku: str, currency: str) -> Row:
        return products.setdefault(
            (sku, currency),
            {
                "sku": sku,
                "currency": currency,
                "units_sold": 0,
                "revenue": Decimal("0.00"),
                "orders": 0,
                "units_cancelled": 0,
                "revenue_cancelled": Decimal("0.00"),
            },
        )

    def step(event: DomainEvent) -> None:
        order = orders.get(event.key)
        status = order["status"] if order else None
        total = order["total"] if order else Decimal(0)
        currency = order["currency"] if order else ""
        target = check_order_event(status, event, total, currency)
        if isinstance(event, OrderCreated):
            order = {
                "order_id": event.order_id,
                "customer_id": event.customer_id,
                "status": target,
                "total": event.total,
                "currency": event.currency,
            }
            orders[event.order_id] = order
            order_lines[event.order_id] = [
                {
                    "order_id": event.order_id,
                    "line_no": number,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                }
                for number, line in enumerate(event.lines, start=1)
            ]
            key = (event.customer_id, event.currency)
            stats = customers.setdefault(
                key,
                {
                    "customer_id": event.customer_id,
                    "currency": event.currency,
                    "orders_placed": 0,
                    "orders_paid": 0,
                    "orders_cancelled": 0,
                    "total_spent": Decimal("0.00"),
                    "first_order_at": event.occurred_at,
                    "last_order_at": event.occurred_at,
                },
            )
            stats["orders_placed"] += 1
            stats["first_order_at"] = min(stats["first_order_at"], event.occurred_at)
            stats["last_order_at"] = max(stats["last_order_at"], event.occurred_at)
            return
        assert order is not None
        stats = customers[(order["customer_id"], order["currency"])]
        was_paid = status in ("PAID", "CONFIRMED", "SHIPPED")
        lines = order_lines[order["order_id"]]
        if isinstance(event, OrderPaid):
            for sku in {line["sku"] for line in lines}:
                product(sku, order["currency"])["orders"] += 1
            for line in lines:
                row = product(line["sku"], order["currency"])
                row["units_sold"] += line["quantity"]
                row["revenue"] += line["quantity"] * line["unit_price"]
            stats["orders_paid"] += 1
            stats["total_spent"] += order["total"]
        if isinstance(event, OrderCancelled):
            stats["orders_cancelled"] += 1
            if was_paid:
                for sku in {line["sku"] for line in lines}:
                    product(sku, order["currency"])["orders"] -= 1
                for line in lines:
                    row = product(line["sku"], order["currency"])
                    row["units_sold"] -= line["quantity"]
                    row["revenue"] -= line["quantity"] * line["unit_price"]
                    row["units_cancelled"] += line["quantity"]
                    row["revenue_cancelled"] += line["quantity"] * line["unit_price"]
                stats["total_spent"] -= order["total"]
        order["status"] = target

    expected = _fold("sales-projection", events, ORDER_EVENTS, step)
    expected.tables = {
        "sales_orders": _sorted(orders.values(), "order_id"),
        "sales_order_lines": _sorted(
            (line for lines in order_lines.values() for line in lines), "order_id", "line_no"
        ),
        "product_sales": _sorted(products.values(), "sku", "currency"),
        "customer_stats": _sorted(customers.values(), "customer_id", "currency"),
    }
    return expected


# -- all groups ----------------------------------------------------------------------

REFERENCE: dict[str, Callable[[Iterable[DomainEvent]], Expected]] = {
    "order-state": expected_order_state,
    "cart-projection": expected_carts,
    "sales-projection": expected_sales,
}


def expected_for(group_id: str, events: Sequence[DomainEvent]) -> Expected:
    return REFERENCE[group_id](events)


# -- what the database holds ---------------------------------------------------------


def _table(name: str) -> Table:
    metadata: MetaData = Base.metadata
    return metadata.tables[name]


def dump_table(engine: Engine, name: str) -> list[Row]:
    """Every row of table ``name`` as a dict, sorted by primary key."""
    table = _table(name)
    order = [column for column in table.primary_key.columns]
    with engine.connect() as connection:
        rows = connection.execute(select(table).order_by(*order)).all()
    return [_normalized(dict(row._mapping)) for row in rows]


def dump_tables(engine: Engine, names: Iterable[str]) -> Tables:
    return {name: dump_table(engine, name) for name in names}


def dump_group(engine: Engine, group_id: str) -> Tables:
    """Every table ``group_id`` owns."""
    return dump_tables(engine, GROUP_TABLES[group_id])


def processed_outcomes(engine: Engine, group_id: str) -> dict[str, str]:
    """event_id → outcome, from ``processed_events``."""
    table = _table("processed_events")
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.event_id, table.c.outcome).where(table.c.group_id == group_id)
        ).all()
    return {row.event_id: row.outcome for row in rows}


def _normalized(row: Row) -> Row:
    for name, value in row.items():
        if isinstance(value, Decimal):
            row[name] = value.quantize(Decimal("0.01"))
        elif isinstance(value, datetime):
            row[name] = value.astimezone(UTC)
    return row


def table_differences(actual: Tables, expected: Tables, limit: int = 5) -> list[str]:
    """Readable differences (first ``limit`` per table), empty when equal."""
    problems: list[str] = []
    for name in sorted(set(actual) | set(expected)):
        got, want = actual.get(name, []), expected.get(name, [])
        if got == want:
            continue
        problems.append(f"{name}: {len(got)} rows, expected {len(want)}")
        for index, (left, right) in enumerate(zip(got, want, strict=False)):
            if left != right:
                diff = {k: (left.get(k), right.get(k)) for k in right if left.get(k) != right[k]}
                problems.append(f"  row {index}: {diff or left}")
                if len(problems) > limit:
                    break
    return problems
