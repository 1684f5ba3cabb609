"""Order events, one typed call per step of the order life cycle.

    create  → PENDING_PAYMENT      pay     → PAID
    confirm → CONFIRMED            ship    → SHIPPED
    cancel  → CANCELLED (from PENDING_PAYMENT, PAID or CONFIRMED)

The producer does not enforce the state machine (the ``order-state`` consumer group
does, and sends what breaks it to the dead-letter topic); it sends what it is told,
keyed by ``order_id`` so an order's events stay in order. Each call returns the event
it sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Unpack

from producers.base import EventSink
from producers.cart import DEFAULT_CURRENCY, EventMeta
from shopstream.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
    new_event_id,
)


def lines_total(lines: Iterable[OrderLine]) -> Decimal:
    """The sum of quantity x unit price over ``lines``."""
    return sum((line.amount for line in lines), Decimal(0))


class OrderProducer:
    """Typed helpers for the ``order-events`` topic."""

    def __init__(self, producer: EventSink, *, currency: str = DEFAULT_CURRENCY) -> None:
        self._producer = producer
        self._currency = currency

    def create(
        self,
        *,
        customer_id: str,
        lines: Iterable[OrderLine],
        order_id: str | None = None,
        total: Decimal | None = None,
        currency: str | None = None,
        cart_id: str | None = None,
        coupon_code: str | None = None,
        **meta: Unpack[EventMeta],
    ) -> OrderCreated:
        """A new order (a new id unless given); ``total`` is computed unless given."""
        order_lines = tuple(lines)
        event = OrderCreated(
            order_id=order_id or new_event_id(),
            customer_id=customer_id,
            lines=order_lines,
            total=lines_total(order_lines) if total is None else total,
            currency=self._currency if currency is None else currency,
            cart_id=cart_id,
            coupon_code=coupon_code,
            **meta,
        )
        self._producer.send(event)
        return event

    def pay(
        self,
        *,
        order_id: str,
        amount: Decimal,
        payment_id: str | None = None,
        currency: str | None = None,
        **meta: Unpack[EventMeta],
    ) -> OrderPaid:
        event = OrderPaid(
            order_id=order_id,
            payment_id=payment_id or new_event_id(),
            amount=amount,
            currency=self._currency if currency is None else currency,
            **meta,
        )
        self._producer.send(event)
        return event

    def confirm(self, *, order_id: str, **meta: Unpack[EventMeta]) -> OrderConfirmed:
        event = OrderConfirmed(order_id=order_id, **meta)
        self._producer.send(event)
        return event

    def ship(
        self, *, order_id: str, carrier: str, tracking_number: str, **meta: Unpack[EventMeta]
    ) -> OrderShipped:
        event = OrderShipped(
            order_id=order_id, carrier=carrier, tracking_number=tracking_number, **meta
        )
        self._producer.send(event)
        return event

    def cancel(self, *, order_id: str, reason: str, **meta: Unpack[EventMeta]) -> OrderCancelled:
        event = OrderCancelled(order_id=order_id, reason=reason, **meta)
        self._producer.send(event)
        return event
