"""Hypothesis strategies for every typed event: valid values across the contract's range
(unicode text, money at 0-2 decimals up to its limit, moments in several zones, optional
fields absent or present)."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any

from hypothesis import strategies as st

from shopstream.domain.limits import CENT, MAX_QUANTITY
from shopstream.events import (
    CartCheckedOut,
    CartItemAdded,
    CartItemRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)

texts = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=24
).filter(lambda text: bool(text.strip()))
optional_texts = st.none() | texts
currencies = st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
event_ids = st.uuids().map(str)


def money(max_integer_digits: int = 10) -> st.SearchStrategy[Decimal]:
    """Decimals with 0, 1 or 2 decimals and up to ``max_integer_digits`` integer digits."""
    top = Decimal(10**max_integer_digits) - CENT
    # the bound at each scale, rounded down: hypothesis rounds an off-scale max_value
    # (9999999999.99 at 0 places) to the nearest, out-of-range value (10000000000)
    return st.integers(0, 2).flatmap(
        lambda places: st.decimals(
            min_value=0,
            max_value=top.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )


def common() -> dict[str, Any]:
    return {"event_id": event_ids, "occurred_at": moments, "correlation_id": optional_texts}


order_lines = st.builds(
    OrderLine, sku=texts, quantity=st.integers(1, 1000), unit_price=money(max_integer_digits=6)
)


@st.composite
def orders_created(draw: st.DrawFn) -> OrderCreated:
    lines = tuple(draw(st.lists(order_lines, min_size=1, max_size=5)))
    return OrderCreated(
        **{name: draw(strategy) for name, strategy in common().items()},
        order_id=draw(texts),
        customer_id=draw(texts),
        cart_id=draw(optional_texts),
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        currency=draw(currencies),
        coupon_code=draw(optional_texts),
    )


STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "CartItemAdded": st.builds(
        CartItemAdded,
        **common(),
        cart_id=texts,
        customer_id=texts,
        sku=texts,
        quantity=st.integers(1, MAX_QUANTITY),
        unit_price=money(max_integer_digits=3),  # the line's amount fits NUMERIC(12, 2)
        currency=currencies,
    ),
    "CartItemRemoved": st.builds(
        CartItemRemoved,
        **common(),
        cart_id=texts,
        customer_id=texts,
        sku=texts,
        quantity=st.integers(1, MAX_QUANTITY),
    ),
    "CartCheckedOut": st.builds(
        CartCheckedOut, **common(), cart_id=texts, customer_id=texts, order_id=texts
    ),
    "OrderCreated": orders_created(),
    "OrderPaid": st.builds(
        OrderPaid, **common(), order_id=texts, payment_id=texts, amount=money(), currency=currencies
    ),
    "OrderConfirmed": st.builds(OrderConfirmed, **common(), order_id=texts),
    "OrderShipped": st.builds(
        OrderShipped, **common(), order_id=texts, carrier=texts, tracking_number=texts
    ),
    "OrderCancelled": st.builds(OrderCancelled, **common(), order_id=texts, reason=texts),
}
