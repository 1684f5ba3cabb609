"""Questions people ask of the read models, as SQLAlchemy Core selects with typed rows.

Every function takes a :class:`~sqlalchemy.Connection` and reads only the tables of
the projections (``orders``… of ``order-state``, ``carts``… of ``cart-projection``,
``product_sales`` and ``customer_stats`` of ``sales-projection``).

Abandoned carts are an answer, not a stored status: a cart is ABANDONED when it is
ACTIVE and its last activity is older than ``abandoned_after`` at the moment
``as_of``. Event times may be simulated (in the past or the future), so the
default moment is the latest activity seen in any cart (:func:`latest_cart_activity`),
not the wall clock. Carts fall in exactly one of ACTIVE (and not abandoned),
ABANDONED and CHECKED_OUT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    case,
    desc,
    func,
    literal,
    select,
)

from shopstream.db.models import (
    Cart,
    CustomerStats,
    Order,
    OrderLineRow,
    OrderStatusHistory,
    ProductSales,
)
from shopstream.db.types import UtcDateTime

orders: Table = Order.__table__  # type: ignore[assignment]
order_lines: Table = OrderLineRow.__table__  # type: ignore[assignment]
order_status_history: Table = OrderStatusHistory.__table__  # type: ignore[assignment]
carts: Table = Cart.__table__  # type: ignore[assignment]
product_sales: Table = ProductSales.__table__  # type: ignore[assignment]
customer_stats: Table = CustomerStats.__table__  # type: ignore[assignment]

DEFAULT_ABANDONED_AFTER = timedelta(minutes=30)
ZERO = Decimal("0.00")


class CartState(StrEnum):
    ACTIVE = "ACTIVE"
    ABANDONED = "ABANDONED"
    CHECKED_OUT = "CHECKED_OUT"


# -- typed rows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSummary:
    order_id: str
    customer_id: str
    status: str
    total: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderLineView:
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class StatusChange:
    seq: int
    from_status: str | None
    to_status: str
    event_type: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class OrderDetail:
    order_id: str
    customer_id: str
    status: str
    total: Decimal
    currency: str
    cart_id: str | None
    coupon_code: str | None
    payment_id: str | None
    amount_paid: Decimal | None
    carrier: str | None
    tracking_number: str | None
    cancel_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    confirmed_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime
    lines: tuple[OrderLineView, ...]
    history: tuple[StatusChange, ...]


@dataclass(frozen=True, slots=True)
class CartView:
    cart_id: str
    customer_id: str
    state: CartState
    item_count: int
    subtotal: Decimal
    currency: str | None
    created_at: datetime
    last_activity_at: datetime
    order_id: str | None


@dataclass(frozen=True, slots=True)
class ProductSalesView:
    sku: str
    currency: str
    units_sold: int
    revenue: Decimal
    orders: int
    units_cancelled: int
    revenue_cancelled: Decimal


@dataclass(frozen=True, slots=True)
class CustomerView:
    customer_id: str
    currency: str
    orders_placed: int
    orders_paid: int
    orders_cancelled: int
    total_spent: Decimal
    first_order_at: datetime
    last_order_at: datetime


@dataclass(frozen=True, slots=True)
class StatusCount:
    status: str
    currency: str
    orders: int
    value: Decimal


@dataclass(frozen=True, slots=True)
class Revenue:
    currency: str
    units_sold: int
    revenue: Decimal
    units_cancelled: int
    revenue_cancelled: Decimal


@dataclass(frozen=True, slots=True)
class CartCounts:
    active: int
    abandoned: int
    checked_out: int
    abandoned_value: tuple[tuple[str, Decimal], ...]
    """Subtotal of the abandoned carts, per currency."""


@dataclass(frozen=True, slots=True)
class Summary:
    as_of: datetime | None
    abandoned_after: timedelta
    orders_by_status: tuple[StatusCount, ...]
    revenue: tuple[Revenue, ...]
    top_products: tuple[ProductSalesView, ...]
    carts: CartCounts


# -- orders -------------------------------------------------------------------------------


def list_orders(
    connection: Connection,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    limit: int = 20,
) -> list[OrderSummary]:
    """Latest orders first, optionally of one status and/or one customer."""
    c = orders.c
    query = select(
        c.order_id, c.customer_id, c.status, c.total, c.currency, c.created_at, c.updated_at
    )
    if status:
        query = query.where(c.status == status.upper())
    if customer_id:
        query = query.where(c.customer_id == customer_id)
    query = query.order_by(desc(c.created_at), c.order_id).limit(limit)
    return [OrderSummary(**row._mapping) for row in connection.execute(query)]


def get_order(connection: Connection, order_id: str) -> OrderDetail | None:
    """One order with its lines and status history, or None."""
    row = connection.execute(select(orders).where(orders.c.order_id == order_id)).first()
    if row is None:
        return None
    line_rows = connection.execute(
        select(
            order_lines.c.line_no,
            order_lines.c.sku,
            order_lines.c.quantity,
            order_lines.c.unit_price,
        )
        .where(order_lines.c.order_id == order_id)
        .order_by(order_lines.c.line_no)
    )
    h = order_status_history.c
    history_rows = connection.execute(
        select(h.seq, h.from_status, h.to_status, h.event_type, h.occurred_at)
        .where(h.order_id == order_id)
        .order_by(h.seq)
    )
    values = dict(row._mapping)
    values.pop("events_applied", None)
    return OrderDetail(
        **values,
        lines=tuple(OrderLineView(**line._mapping) for line in line_rows),
        history=tuple(StatusChange(**change._mapping) for change in history_rows),
    )


def orders_by_status(connection: Connection) -> list[StatusCount]:
    c = orders.c
    query = (
        select(c.status, c.currency, func.count().label("orders"), func.sum(c.total).label("value"))
        .group_by(c.status, c.currency)
        .order_by(c.status, c.currency)
    )
    return [
        StatusCount(row.status, row.currency, row.orders, _money(row.value))
        for row in connection.execute(query)
    ]


# -- carts --------------------------------------------------------------------------------


def latest_cart_activity(connection: Connection) -> datetime | None:
    """The latest ``last_activity_at`` of any cart (the default 'now' of cart queries)."""
    moment: datetime | None = connection.scalar(select(func.max(carts.c.last_activity_at)))
    return moment


def list_carts(
    connection: Connection,
    *,
    state: CartState | None = None,
    as_of: datetime,
    abandoned_after: timedelta = DEFAULT_ABANDONED_AFTER,
    limit: int = 20,
) -> list[CartView]:
    """Carts by latest activity, optionally in one state at ``as_of``."""
    c = carts.c
    query: Select[Any] = select(carts, _cart_state(as_of, abandoned_after).label("state"))
    if state is not None:
        query = query.where(_in_state(state, as_of, abandoned_after))
    query = query.order_by(desc(c.last_activity_at), c.cart_id).limit(limit)
    return [
        CartView(
            cart_id=row.cart_id,
            customer_id=row.customer_id,
            state=CartState(row.state),
            item_count=row.item_count,
            subtotal=row.subtotal,
            currency=row.currency,
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            order_id=row.order_id,
        )
        for row in connection.execute(query)
    ]


def count_carts(
    connection: Connection, *, as_of: datetime, abandoned_after: timedelta
) -> CartCounts:
    c = carts.c
    state = _cart_state(as_of, abandoned_after).label("state")
    counts = {
        row.state: row.carts
        for row in connection.execute(select(state, func.count().label("carts")).group_by(state))
    }
    abandoned_value = connection.execute(
        select(c.currency, func.sum(c.subtotal).label("value"))
        .where(_in_state(CartState.ABANDONED, as_of, abandoned_after))
        .group_by(c.currency)
        .order_by(c.currency)
    )
    return CartCounts(
        active=counts.get(CartState.ACTIVE.value, 0),
        abandoned=counts.get(CartState.ABANDONED.value, 0),
        checked_out=counts.get(CartState.CHECKED_OUT.value, 0),
        abandoned_value=tuple((row.currency or "", _money(row.value)) for row in abandoned_value),
    )


def _cart_state(as_of: datetime, abandoned_after: timedelta) -> Any:
    c = carts.c
    return case(
        (c.status == CartState.CHECKED_OUT.value, literal(CartState.CHECKED_OUT.value)),
        (c.last_activity_at < _cutoff(as_of, abandoned_after), literal(CartState.ABANDONED.value)),
        else_=literal(CartState.ACTIVE.value),
    )


def _in_state(state: CartState, as_of: datetime, abandoned_after: timedelta) -> Any:
    c = carts.c
    cutoff = _cutoff(as_of, abandoned_after)
    if state is CartState.CHECKED_OUT:
        return c.status == CartState.CHECKED_OUT.value
    if state is CartState.ABANDONED:
        return and_(c.status == CartState.ACTIVE.value, c.last_activity_at < cutoff)
    return and_(c.status == CartState.ACTIVE.value, c.last_activity_at >= cutoff)


def _cutoff(as_of: datetime, abandoned_after: timedelta) -> Any:
    try:
        cutoff = as_of - abandoned_after
    except OverflowError:  # before the first date: no cart has been idle that long
        cutoff = datetime.min.replace(tzinfo=UTC)
    return bindparam("cutoff", cutoff, type_=UtcDateTime(), unique=True)


# -- sales --------------------------------------------------------------------------------


def top_products(connection: Connection, *, top: int = 10) -> list[ProductSalesView]:
    """Best-selling products by net revenue (then units)."""
    p = product_sales.c
    query = select(product_sales).order_by(desc(p.revenue), desc(p.units_sold), p.sku, p.currency)
    return [ProductSalesView(**row._mapping) for row in connection.execute(query.limit(top))]


def top_customers(connection: Connection, *, top: int = 10) -> list[CustomerView]:
    """Customers by net amount spent (then orders paid)."""
    s = customer_stats.c
    query = select(customer_stats).order_by(
        desc(s.total_spent), desc(s.orders_paid), s.customer_id, s.currency
    )
    return [CustomerView(**row._mapping) for row in connection.execute(query.limit(top))]


def revenue_by_currency(connection: Connection) -> list[Revenue]:
    p = product_sales.c
    query = (
        select(
            p.currency,
            func.sum(p.units_sold).label("units_sold"),
            func.sum(p.revenue).label("revenue"),
            func.sum(p.units_cancelled).label("units_cancelled"),
            func.sum(p.revenue_cancelled).label("revenue_cancelled"),
        )
        .group_by(p.currency)
        .order_by(p.currency)
    )
    return [
        Revenue(
            row.currency,
            int(row.units_sold or 0),
            _money(row.revenue),
            int(row.units_cancelled or 0),
            _money(row.revenue_cancelled),
        )
        for row in connection.execute(query)
    ]


def summary(
    connection: Connection,
    *,
    as_of: datetime | None,
    abandoned_after: timedelta = DEFAULT_ABANDONED_AFTER,
    top: int = 5,
) -> Summary:
    """Orders by status, revenue, top products and cart counts, in one object."""
    moment = as_of or latest_cart_activity(connection)
    cart_counts = (
        count_carts(connection, as_of=moment, abandoned_after=abandoned_after)
        if moment is not None
        else CartCounts(0, 0, 0, ())
    )
    return Summary(
        as_of=moment,
        abandoned_after=abandoned_after,
        orders_by_status=tuple(orders_by_status(connection)),
        revenue=tuple(revenue_by_currency(connection)),
        top_products=tuple(top_products(connection, top=top)),
        carts=cart_counts,
    )


def _money(value: Any) -> Decimal:
    """A SUM of a Money column: cents (int) on SQLite, Decimal on PostgreSQL, or NULL."""
    if value is None:
        return ZERO
    return Decimal(value).quantize(Decimal("0.01"))
