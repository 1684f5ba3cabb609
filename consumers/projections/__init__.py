"""The consumer groups this project runs, by name."""

from __future__ import annotations

from collections.abc import Callable

from consumers.projections.base import Projection
from consumers.projections.cart_projection import CartProjection
from consumers.projections.order_state import OrderStateProjection
from consumers.projections.sales_projection import SalesProjection
from shopstream.errors import UsageError

GROUPS: dict[str, Callable[[], Projection]] = {
    "order-state": OrderStateProjection,
    "cart-projection": CartProjection,
    "sales-projection": SalesProjection,
}


def projection_for(group_id: str) -> Projection:
    factory = GROUPS.get(group_id)
    if factory is None:
        known = ", ".join(GROUPS)
        raise UsageError(f"unknown group {group_id!r} (known groups: {known})")
    return factory()
