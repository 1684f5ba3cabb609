"""The order state machine, shared by the projections that keep order status.

    PENDING_PAYMENT --OrderPaid--> PAID --OrderConfirmed--> CONFIRMED --OrderShipped--> SHIPPED
    PENDING_PAYMENT | PAID | CONFIRMED --OrderCancelled--> CANCELLED

An event that breaks the machine is refused (:class:`TransitionRefused`):
``unknown-order`` (no OrderCreated seen for it), ``duplicate-order`` (a second
OrderCreated for one id), ``illegal-transition`` (e.g. paying a cancelled order,
shipping an unpaid one), ``payment-mismatch`` (amount or currency differ from the
order's total).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from shopstream.events import DomainEvent, OrderCreated, OrderPaid


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


S = OrderStatus
#: event type → (statuses it may be applied in, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[OrderStatus], OrderStatus]] = {
    "OrderPaid": (frozenset({S.PENDING_PAYMENT}), S.PAID),
    "OrderConfirmed": (frozenset({S.PAID}), S.CONFIRMED),
    "OrderShipped": (frozenset({S.CONFIRMED}), S.SHIPPED),
    "OrderCancelled": (frozenset({S.PENDING_PAYMENT, S.PAID, S.CONFIRMED}), S.CANCELLED),
}


class TransitionRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def next_status(current: OrderStatus | None, event: DomainEvent) -> OrderStatus:
    """The status ``event`` moves an order in ``current`` to, or TransitionRefused."""
    order_id = getattr(event, "order_id", "?")
    if isinstance(event, OrderCreated):
        if current is not None:
            raise TransitionRefused(
                "duplicate-order", f"order {order_id} already exists (status {current})"
            )
        return S.PENDING_PAYMENT
    rule = TRANSITIONS.get(event.event_type)
    if rule is None:
        raise TransitionRefused("unsupported-event", f"{event.event_type} is not an order event")
    if current is None:
        raise TransitionRefused("unknown-order", f"{event.event_type} for unknown order {order_id}")
    allowed, target = rule
    if current not in allowed:
        raise TransitionRefused(
            "illegal-transition", f"{event.event_type} not allowed in status {current}"
        )
    return target


def check_payment(total: Decimal, currency: str, event: OrderPaid) -> None:
    if event.currency != currency or event.amount != total:
        raise TransitionRefused(
            "payment-mismatch",
            f"paid {event.amount} {event.currency}, order total is {total} {currency}",
        )
