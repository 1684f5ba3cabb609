"""The ``sales-projection`` group: sales per product and per customer, from ``order-events``.

What counts as a sale: an order is sold when it is PAID (``OrderPaid``). Creating
an order sells nothing; confirming or shipping it changes no figure.

``product_sales`` (one row per sku and currency):

* ``units_sold``, ``revenue``, ``orders`` — NET of cancellations: what paid orders
  that were not cancelled afterwards bought (units, quantity x unit price, and the
  number of such orders holding the sku);
* ``units_cancelled``, ``revenue_cancelled`` — what was refunded: the units and
  amounts of paid orders cancelled afterwards. ``units_sold + units_cancelled`` is
  therefore everything ever paid for.

``customer_stats`` (one row per customer and currency):

* ``orders_placed`` — orders created (``OrderCreated``);
* ``orders_paid`` — orders ever paid (a later cancellation does not lower it);
* ``orders_cancelled`` — orders cancelled, before or after payment;
* ``total_spent`` — amounts paid minus amounts refunded (net of cancellations);
* ``first_order_at``, ``last_order_at`` — earliest and latest order creation time.

A cancellation subtracts exactly what the payment added (from the order's own lines,
as the group stored them at ``OrderCreated``). A cancellation before payment changes
no sale: only ``orders_cancelled`` grows.

This group never reads ``order-state``'s tables. It keeps its own minimal order state
(``sales_orders``, ``sales_order_lines``) and enforces the same state machine with
:func:`consumers.projections.order_state.next_status` and
:func:`~consumers.projections.order_state.check_payment`, so it refuses exactly the events
``order-state`` refuses, with the same reasons
(``unknown-order``, ``duplicate-order``, ``illegal-transition``, ``payment-mismatch``).

Orders are partitioned by ``order_id`` but products and customers are not: two
consumers of this group (on different partitions) may add to the same
``product_sales`` row at the same time. Those rows are therefore never written as
read-modify-write: each batch sums its changes per row in memory and writes them with
one upsert per table, in key order (``INSERT`` the delta ``ON CONFLICT DO UPDATE SET
units_sold = units_sold + excluded.units_sold``, first/last times widened with
min/max). Every row is locked once, in the same order by every transaction, so
concurrent members neither lose an update nor deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, select, update

from consumers.projections.base import Envelope, Projection, Rejection
from shopstream.db.bulk import dialect_insert, execute_rows, insert_rows, key_in
from shopstream.db.models import CustomerStats, ProductSales, SalesOrder, SalesOrderLine
from shopstream.domain.order import (
    OrderStatus,
    TransitionRefused,
    check_payment,
    next_status,
)
from shopstream.events import DomainEvent, OrderCancelled, OrderCreated, OrderPaid
from shopstream.groups import SALES_PROJECTION

ZERO = Decimal("0.00")
PAID_STATES = frozenset({OrderStatus.PAID, OrderStatus.CONFIRMED, OrderStatus.SHIPPED})

product_sales: Table = ProductSales.__table__  # type: ignore[assignment]
customer_stats: Table = CustomerStats.__table__  # type: ignore[assignment]
sales_orders: Table = SalesOrder.__table__  # type: ignore[assignment]
sales_order_lines: Table = SalesOrderLine.__table__  # type: ignore[assignment]

ProductKey = tuple[str, str]  # sku, currency
CustomerKey = tuple[str, str]  # customer_id, currency


@dataclass(frozen=True, slots=True)
class SoldLine:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass
class SalesOrderState:
    """One order as this group knows it."""

    order_id: str
    customer_id: str
    status: OrderStatus
    total: Decimal
    currency: str
    lines: list[SoldLine]
    is_new: bool = False
    dirty: bool = False


@dataclass
class ProductDelta:
    units_sold: int = 0
    revenue: Decimal = ZERO
    orders: int = 0
    units_cancelled: int = 0
    revenue_cancelled: Decimal = ZERO


@dataclass
class CustomerDelta:
    orders_placed: int = 0
    orders_paid: int = 0
    orders_cancelled: int = 0
    total_spent: Decimal = ZERO
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None


@dataclass
class SalesBatch:
    """Everything one batch changes: order states, and summed deltas per row."""

    orders: dict[str, SalesOrderState]
    products: dict[ProductKey, ProductDelta] = field(default_factory=dict)
    customers: dict[CustomerKey, CustomerDelta] = field(default_factory=dict)

    def product(self, sku: str, currency: str) -> ProductDelta:
        return self.products.setdefault((sku, currency), ProductDelta())

    def customer(self, order: SalesOrderState) -> CustomerDelta:
        return self.customers.setdefault((order.customer_id, order.currency), CustomerDelta())


class SalesProjection(Projection):
    group_id = SALES_PROJECTION.name
    topic = SALES_PROJECTION.topic
    tables = (sales_order_lines, sales_orders, product_sales, customer_stats)

    def apply(self, connection: Connection, batch: Sequence[Envelope]) -> list[Rejection]:
        state = SalesBatch(orders=load_orders(connection, {env.event.key for env in batch}))
        rejections: list[Rejection] = []
        for env in batch:
            try:
                apply_event(state, env.event)
            except TransitionRefused as refused:
                rejections.append(Rejection(env, refused.reason, refused.detail))
        write_orders(connection, state.orders)
        write_products(connection, state.products)
        write_customers(connection, state.customers)
        return rejections


# -- rules ------------------------------------------------------------------------------


def apply_event(state: SalesBatch, event: DomainEvent) -> None:
    """Apply one order event to ``state`` (in place), or raise TransitionRefused."""
    order = state.orders.get(event.key)
    current = order.status if order is not None else None
    target = next_status(current, event)
    if isinstance(event, OrderCreated):
        order = _created(event)
        state.orders[order.order_id] = order
        _count_created(state.customer(order), event.occurred_at)
    else:
        assert order is not None  # next_status refuses events of unknown orders
        if isinstance(event, OrderPaid):
            check_payment(order.total, order.currency, event)
            _count_paid(state, order)
        elif isinstance(event, OrderCancelled):
            _count_cancelled(state, order)
    order.status = target
    order.dirty = True


def _created(event: OrderCreated) -> SalesOrderState:
    lines = [SoldLine(line.sku, line.quantity, line.unit_price) for line in event.lines]
    return SalesOrderState(
        order_id=event.order_id,
        customer_id=event.customer_id,
        status=OrderStatus.PENDING_PAYMENT,
        total=event.total,
        currency=event.currency,
        lines=lines,
        is_new=True,
    )


def _count_created(customer: CustomerDelta, at: datetime) -> None:
    customer.orders_placed += 1
    customer.first_order_at = min(at, customer.first_order_at or at)
    customer.last_order_at = max(at, customer.last_order_at or at)


def _count_paid(state: SalesBatch, order: SalesOrderState) -> None:
    for sku, (units, amount) in units_by_sku(order.lines).items():
        product = state.product(sku, order.currency)
        product.units_sold += units
        product.revenue += amount
        product.orders += 1
    customer = state.customer(order)
    customer.orders_paid += 1
    customer.total_spent += order.total


def _count_cancelled(state: SalesBatch, order: SalesOrderState) -> None:
    customer = state.customer(order)
    customer.orders_cancelled += 1
    if order.status not in PAID_STATES:
        return  # nothing was sold: nothing to refund
    for sku, (units, amount) in units_by_sku(order.lines).items():
        product = state.product(sku, order.currency)
        product.units_sold -= units
        product.revenue -= amount
        product.orders -= 1
        product.units_cancelled += units
        product.revenue_cancelled += amount
    customer.total_spent -= order.total


def units_by_sku(lines: Iterable[SoldLine]) -> dict[str, tuple[int, Decimal]]:
    """Units and amount per sku (an order may name a sku on several lines)."""
    sums: dict[str, tuple[int, Decimal]] = {}
    for line in lines:
        units, amount = sums.get(line.sku, (0, ZERO))
        sums[line.sku] = (units + line.quantity, amount + line.unit_price * line.quantity)
    return sums


# -- storage: orders --------------------------------------------------------------------


def load_orders(connection: Connection, order_ids: set[str]) -> dict[str, SalesOrderState]:
    ids = sorted(order_ids)
    orders: dict[str, SalesOrderState] = {}
    if not ids:
        return orders
    query = select(sales_orders).where(key_in(connection, sales_orders.c.order_id, ids))
    for row in connection.execute(query):
        orders[row.order_id] = SalesOrderState(
            order_id=row.order_id,
            customer_id=row.customer_id,
            status=OrderStatus(row.status),
            total=row.total,
            currency=row.currency,
            lines=[],
        )
    lines = connection.execute(
        select(sales_order_lines)
        .where(key_in(connection, sales_order_lines.c.order_id, ids))
        .order_by(sales_order_lines.c.order_id, sales_order_lines.c.line_no)
    )
    for line in lines:
        orders[line.order_id].lines.append(SoldLine(line.sku, line.quantity, line.unit_price))
    return orders


def write_orders(connection: Connection, orders: dict[str, SalesOrderState]) -> None:
    new = [order for order in orders.values() if order.is_new and order.dirty]
    changed = [order for order in orders.values() if not order.is_new and order.dirty]
    if new:
        insert_rows(connection, sales_orders, [_order_row(order) for order in new])
        lines = [
            {
                "order_id": order.order_id,
                "line_no": number,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
            }
            for order in new
            for number, line in enumerate(order.lines, start=1)
        ]
        insert_rows(connection, sales_order_lines, lines)
    if changed:
        execute_rows(
            connection,
            _UPDATE_STATUS,
            [{"b_order_id": order.order_id, "status": order.status.value} for order in changed],
        )


def _order_row(order: SalesOrderState) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "total": order.total,
        "currency": order.currency,
    }


_UPDATE_STATUS = (
    update(sales_orders)
    .where(sales_orders.c.order_id == bindparam("b_order_id"))
    .values(status=bindparam("status"))
)


# -- storage: aggregates (upserts of deltas, safe under concurrent consumers) -------------

#: Neutral elements of min and max: a batch without OrderCreated for a customer leaves
#: the first and last order times as they are.
NEVER_BEFORE = datetime.max.replace(tzinfo=UTC)
NEVER_AFTER = datetime.min.replace(tzinfo=UTC)


def write_products(connection: Connection, deltas: dict[ProductKey, ProductDelta]) -> None:
    if not deltas:
        return
    rows = [
        {"sku": sku, "currency": currency, **_product_values(deltas[(sku, currency)])}
        for sku, currency in sorted(deltas)
    ]
    statement = dialect_insert(connection, product_sales)
    add = {name: product_sales.c[name] + statement.excluded[name] for name in _PRODUCT_COUNTERS}
    connection.execute(statement.on_conflict_do_update(index_elements=_PRODUCT_KEY, set_=add), rows)


def _product_values(delta: ProductDelta) -> dict[str, Any]:
    return {
        "units_sold": delta.units_sold,
        "revenue": delta.revenue,
        "orders": delta.orders,
        "units_cancelled": delta.units_cancelled,
        "revenue_cancelled": delta.revenue_cancelled,
    }


def write_customers(connection: Connection, deltas: dict[CustomerKey, CustomerDelta]) -> None:
    if not deltas:
        return
    rows = [
        {
            "customer_id": customer,
            "currency": currency,
            **_customer_values(deltas[(customer, currency)]),
        }
        for customer, currency in sorted(deltas)
    ]
    statement = dialect_insert(connection, customer_stats)
    c, new = customer_stats.c, statement.excluded
    changes: dict[str, Any] = {name: c[name] + new[name] for name in _CUSTOMER_COUNTERS}
    changes["first_order_at"] = case(
        (new.first_order_at < c.first_order_at, new.first_order_at), else_=c.first_order_at
    )
    changes["last_order_at"] = case(
        (new.last_order_at > c.last_order_at, new.last_order_at), else_=c.last_order_at
    )
    connection.execute(
        statement.on_conflict_do_update(index_elements=_CUSTOMER_KEY, set_=changes), rows
    )


def _customer_values(delta: CustomerDelta) -> dict[str, Any]:
    return {
        "orders_placed": delta.orders_placed,
        "orders_paid": delta.orders_paid,
        "orders_cancelled": delta.orders_cancelled,
        "total_spent": delta.total_spent,
        "first_order_at": delta.first_order_at or NEVER_BEFORE,
        "last_order_at": delta.last_order_at or NEVER_AFTER,
    }


_PRODUCT_KEY = [product_sales.c.sku, product_sales.c.currency]
_PRODUCT_COUNTERS = ("units_sold", "revenue", "orders", "units_cancelled", "revenue_cancelled")
_CUSTOMER_KEY = [customer_stats.c.customer_id, customer_stats.c.currency]
_CUSTOMER_COUNTERS = ("orders_placed", "orders_paid", "orders_cancelled", "total_spent")
