"""Cart events, one typed call each: add an item, remove an item, check out.

Every call builds a validated event (``event_id`` and ``occurred_at`` generated unless
given) and sends it through an :class:`~producers.base.EventProducer`, keyed by
``cart_id`` so a cart's events stay in order. Each call returns the event it sent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from producers.base import EventSink
from shopstream.events import CartCheckedOut, CartItemAdded, CartItemRemoved, new_event_id

DEFAULT_CURRENCY = "EUR"


class EventMeta(TypedDict, total=False):
    """Optional fields every event has; generated when left out."""

    event_id: str
    occurred_at: datetime
    correlation_id: str


def event_meta(
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    correlation_id: str | None = None,
) -> EventMeta:
    """The given (non-None) common fields, ready to pass as ``**meta``."""
    meta = EventMeta()
    if event_id is not None:
        meta["event_id"] = event_id
    if occurred_at is not None:
        meta["occurred_at"] = occurred_at
    if correlation_id is not None:
        meta["correlation_id"] = correlation_id
    return meta


class CartProducer:
    """Typed helpers for the ``cart-events`` topic."""

    def __init__(self, producer: EventSink, *, currency: str = DEFAULT_CURRENCY) -> None:
        self._producer = producer
        self._currency = currency

    def add_item(
        self,
        *,
        cart_id: str,
        customer_id: str,
        sku: str,
        quantity: int,
        unit_price: Decimal,
        currency: str | None = None,
        **meta: Unpack[EventMeta],
    ) -> CartItemAdded:
        event = CartItemAdded(
            cart_id=cart_id,
            customer_id=customer_id,
            sku=sku,
            quantity=quantity,
            unit_price=unit_price,
            currency=self._currency if currency is None else currency,
            **meta,
        )
        self._producer.send(event)
        return event

    def remove_item(
        self,
        *,
        cart_id: str,
        customer_id: str,
        sku: str,
        quantity: int,
        **meta: Unpack[EventMeta],
    ) -> CartItemRemoved:
        event = CartItemRemoved(
            cart_id=cart_id, customer_id=customer_id, sku=sku, quantity=quantity, **meta
        )
        self._producer.send(event)
        return event

    def checkout(
        self,
        *,
        cart_id: str,
        customer_id: str,
        order_id: str | None = None,
        **meta: Unpack[EventMeta],
    ) -> CartCheckedOut:
        """Check the cart out into order ``order_id`` (a new id unless given)."""
        event = CartCheckedOut(
            cart_id=cart_id, customer_id=customer_id, order_id=order_id or new_event_id(), **meta
        )
        self._producer.send(event)
        return event
