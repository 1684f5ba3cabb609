"""Every table, as typed SQLAlchemy 2.0 models.

Runtime tables (shared by all groups, keyed by group id):
``consumer_offsets`` — the next offset to read per group and partition, written in
the same transaction as the projection rows (effectively-once); ``processed_events``
— event ids each group has already applied or dead-lettered from a topic (re-sent
events are skipped). Both are keyed by the real topic name, ``SHOPSTREAM_TOPIC_PREFIX``
included, so two prefixes never deduplicate against or reset each other.

Projection tables, each owned by one group (see ``consumers/``):
``order-state`` → orders, order_lines, order_status_history;
``cart-projection`` → carts, cart_items;
``sales-projection`` → product_sales, customer_stats, sales_orders, sales_order_lines.

Lengths and precisions come from the domain limits (``shopstream/domain/limits.py``),
so every value a valid event carries fits; sums over history (a cart's subtotal, a
product's revenue, a customer's spend) and counts of units or orders are wider
(``Money(SUM_PRECISION)``, ``BigInteger``) than one event's values.

The shop's services (:mod:`shopstream.services`) own the ``service_*`` tables, the
write side: products, carts and orders as the service sees them, the transactional
outbox and the idempotency keys. No projection reads or writes them.

Child rows (order lines, history, cart items) carry their parent's key but no foreign
key constraint: each projection is the only writer of its tables and writes parents
first in the same transaction (see migration 0002 for the measured cost of the checks).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shopstream.db.types import Money, UtcDateTime
from shopstream.domain.limits import (
    CARRIER,
    CATEGORY,
    COUPON_CODE,
    CURRENCY_LENGTH,
    ID,
    IDEMPOTENCY_KEY_LENGTH,
    PAYMENT_ID,
    PRODUCT_NAME,
    REASON,
    SKU,
    SUM_PRECISION,
    TRACKING_NUMBER,
    UUID_LENGTH,
)

ID_TYPE = String(ID.max_length)
SKU_TYPE = String(SKU.max_length)
CURRENCY_TYPE = String(CURRENCY_LENGTH)
EVENT_ID_TYPE = String(UUID_LENGTH)


class Base(DeclarativeBase):
    pass


# -- runtime -------------------------------------------------------------------------


class ConsumerOffset(Base):
    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class ProcessedEvent(Base):
    __tablename__ = "processed_events"

    group_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)  # prefix included
    event_id: Mapped[str] = mapped_column(EVENT_ID_TYPE, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))  # applied | dead-lettered


# -- order-state ---------------------------------------------------------------------


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID_TYPE, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    total: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE)
    cart_id: Mapped[str | None] = mapped_column(ID_TYPE)
    coupon_code: Mapped[str | None] = mapped_column(String(COUPON_CODE.max_length))
    payment_id: Mapped[str | None] = mapped_column(String(PAYMENT_ID.max_length))
    amount_paid: Mapped[Decimal | None] = mapped_column(Money())
    carrier: Mapped[str | None] = mapped_column(String(CARRIER.max_length))
    tracking_number: Mapped[str | None] = mapped_column(String(TRACKING_NUMBER.max_length))
    cancel_reason: Mapped[str | None] = mapped_column(String(REASON.max_length))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    events_applied: Mapped[int] = mapped_column(Integer)


class OrderLineRow(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(SKU_TYPE, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())


class OrderStatusHistory(Base):
    __tablename__ = "order_status_history"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(50))
    event_id: Mapped[str] = mapped_column(EVENT_ID_TYPE)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())


# -- cart-projection -----------------------------------------------------------------


class Cart(Base):
    __tablename__ = "carts"

    cart_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID_TYPE, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # ACTIVE | CHECKED_OUT
    item_count: Mapped[int] = mapped_column(BigInteger)
    subtotal: Mapped[Decimal] = mapped_column(Money(SUM_PRECISION))
    currency: Mapped[str | None] = mapped_column(CURRENCY_TYPE)
    order_id: Mapped[str | None] = mapped_column(ID_TYPE)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    checked_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CartItem(Base):
    __tablename__ = "cart_items"

    cart_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    sku: Mapped[str] = mapped_column(SKU_TYPE, primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)  # adds of one sku add up
    unit_price: Mapped[Decimal] = mapped_column(Money())


# -- sales-projection ----------------------------------------------------------------


class ProductSales(Base):
    __tablename__ = "product_sales"

    sku: Mapped[str] = mapped_column(SKU_TYPE, primary_key=True)
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE, primary_key=True)
    units_sold: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money(SUM_PRECISION))
    orders: Mapped[int] = mapped_column(BigInteger)
    units_cancelled: Mapped[int] = mapped_column(BigInteger)
    revenue_cancelled: Mapped[Decimal] = mapped_column(Money(SUM_PRECISION))


class CustomerStats(Base):
    __tablename__ = "customer_stats"

    customer_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE, primary_key=True)
    orders_placed: Mapped[int] = mapped_column(BigInteger)
    orders_paid: Mapped[int] = mapped_column(BigInteger)
    orders_cancelled: Mapped[int] = mapped_column(BigInteger)
    total_spent: Mapped[Decimal] = mapped_column(Money(SUM_PRECISION))
    first_order_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_order_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SalesOrder(Base):
    """The sales group's own minimal order state (it never reads order-state's tables)."""

    __tablename__ = "sales_orders"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID_TYPE)
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE)


class SalesOrderLine(Base):
    __tablename__ = "sales_order_lines"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(SKU_TYPE)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())


# -- services (write side) -----------------------------------------------------------


class ServiceProduct(Base):
    """The catalog the services sell from (seeded from the simulator's catalog)."""

    __tablename__ = "service_products"

    sku: Mapped[str] = mapped_column(SKU_TYPE, primary_key=True)
    name: Mapped[str] = mapped_column(String(PRODUCT_NAME.max_length))
    category: Mapped[str] = mapped_column(String(CATEGORY.max_length))
    price: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE)


class ServiceCart(Base):
    __tablename__ = "service_carts"

    cart_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID_TYPE)
    status: Mapped[str] = mapped_column(String(20))  # OPEN | CHECKED_OUT
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE)
    order_id: Mapped[str | None] = mapped_column(ID_TYPE)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ServiceCartItem(Base):
    __tablename__ = "service_cart_items"

    cart_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    sku: Mapped[str] = mapped_column(SKU_TYPE, primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())


class ServiceOrder(Base):
    __tablename__ = "service_orders"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID_TYPE)
    cart_id: Mapped[str | None] = mapped_column(ID_TYPE)
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(CURRENCY_TYPE)
    payment_id: Mapped[str | None] = mapped_column(String(PAYMENT_ID.max_length))
    carrier: Mapped[str | None] = mapped_column(String(CARRIER.max_length))
    tracking_number: Mapped[str | None] = mapped_column(String(TRACKING_NUMBER.max_length))
    cancel_reason: Mapped[str | None] = mapped_column(String(REASON.max_length))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ServiceOrderLine(Base):
    __tablename__ = "service_order_lines"

    order_id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(SKU_TYPE)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())


class OutboxRow(Base):
    """One event waiting for (or done with) the relay; ``sent_at`` NULL means pending.

    ``payload`` is the event's JSON (:meth:`shopstream.events.Event.to_json`), so the
    relay rebuilds the very event (same ``event_id`` and ``occurred_at``) to encode.
    """

    __tablename__ = "service_outbox"
    __table_args__ = (
        Index(
            "ix_service_outbox_pending",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    aggregate_id: Mapped[str] = mapped_column(ID_TYPE)  # a cart_id or an order_id
    event_type: Mapped[str] = mapped_column(String(50))
    event_id: Mapped[str] = mapped_column(EVENT_ID_TYPE, unique=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` and the first response given for it."""

    __tablename__ = "service_idempotency_keys"

    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256, hex
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


# -- operator tools --------------------------------------------------------------------


class DlqRedrive(Base):
    """A dead letter re-produced to its original topic by ``dlq redrive`` (once each).

    Keyed by the dead letter's coordinates; ``event_id`` is the new id the redriven
    event carries, ``topic``/``partition``/``offset`` where it landed.
    """

    __tablename__ = "dlq_redrives"

    dlq_topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    dlq_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    dlq_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    group_id: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(100))
    original_event_id: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    redriven_at: Mapped[datetime] = mapped_column(UtcDateTime())
