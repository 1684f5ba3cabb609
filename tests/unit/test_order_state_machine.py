"""The order state machine: every legal transition, every illegal one."""

from __future__ import annotations

from decimal import Decimal
from itertools import product

import pytest

from shopstream.domain.order import (
    TRANSITIONS,
    OrderStatus,
    TransitionRefused,
    check_payment,
    next_status,
)
from shopstream.events import (
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)

S = OrderStatus

LEGAL = {
    (None, "OrderCreated"): S.PENDING_PAYMENT,
    (S.PENDING_PAYMENT, "OrderPaid"): S.PAID,
    (S.PAID, "OrderConfirmed"): S.CONFIRMED,
    (S.CONFIRMED, "OrderShipped"): S.SHIPPED,
    (S.PENDING_PAYMENT, "OrderCancelled"): S.CANCELLED,
    (S.PAID, "OrderCancelled"): S.CANCELLED,
    (S.CONFIRMED, "OrderCancelled"): S.CANCELLED,
}


def make(event_type: str) -> DomainEvent:
    if event_type == "OrderCreated":
        return OrderCreated(
            order_id="o-1",
            customer_id="c-1",
            lines=(OrderLine("SKU-1", 2, Decimal("5.00")),),
            total=Decimal("10.00"),
            currency="EUR",
        )
    if event_type == "OrderPaid":
        return OrderPaid(order_id="o-1", payment_id="p-1", amount=Decimal("10.00"), currency="EUR")
    if event_type == "OrderConfirmed":
        return OrderConfirmed(order_id="o-1")
    if event_type == "OrderShipped":
        return OrderShipped(order_id="o-1", carrier="DHL", tracking_number="T-1")
    return OrderCancelled(order_id="o-1", reason="changed mind")


EVENT_TYPES = ["OrderCreated", "OrderPaid", "OrderConfirmed", "OrderShipped", "OrderCancelled"]
STATES: list[OrderStatus | None] = [None, *OrderStatus]


@pytest.mark.parametrize(("current", "event_type"), sorted(LEGAL, key=str))
def test_legal_transition(current: OrderStatus | None, event_type: str) -> None:
    assert next_status(current, make(event_type)) is LEGAL[(current, event_type)]


ILLEGAL = [pair for pair in product(STATES, EVENT_TYPES) if pair not in LEGAL]


@pytest.mark.parametrize(("current", "event_type"), ILLEGAL, ids=[f"{c}-{e}" for c, e in ILLEGAL])
def test_illegal_transition_is_refused_with_reason(
    current: OrderStatus | None, event_type: str
) -> None:
    with pytest.raises(TransitionRefused) as refused:
        next_status(current, make(event_type))
    if event_type == "OrderCreated":
        assert refused.value.reason == "duplicate-order"
    elif current is None:
        assert refused.value.reason == "unknown-order"
        assert "unknown order o-1" in refused.value.detail
    else:
        assert refused.value.reason == "illegal-transition"
        assert f"{event_type} not allowed in status {current}" == refused.value.detail


def test_every_pair_is_covered() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(STATES) * len(EVENT_TYPES)
    assert set(TRANSITIONS) == set(EVENT_TYPES) - {"OrderCreated"}


def test_terminal_states_accept_nothing() -> None:
    for status in (S.SHIPPED, S.CANCELLED):
        for event_type in EVENT_TYPES:
            with pytest.raises(TransitionRefused):
                next_status(status, make(event_type))


def test_payment_must_match_total_and_currency() -> None:
    check_payment(
        Decimal("10.00"),
        "EUR",
        OrderPaid(order_id="o", payment_id="p", amount=Decimal("10.00"), currency="EUR"),
    )
    with pytest.raises(TransitionRefused, match="payment-mismatch"):
        check_payment(
            Decimal("10.00"),
            "EUR",
            OrderPaid(order_id="o", payment_id="p", amount=Decimal("9.99"), currency="EUR"),
        )
    with pytest.raises(TransitionRefused, match="payment-mismatch"):
        check_payment(
            Decimal("10.00"),
            "EUR",
            OrderPaid(order_id="o", payment_id="p", amount=Decimal("10.00"), currency="USD"),
        )
