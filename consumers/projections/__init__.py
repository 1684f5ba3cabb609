"""The projections, one module per consumer group, and which class serves which group.

The groups themselves (name, topic, tables) are listed in :mod:`shopstream.groups`;
``tests/unit/test_groups.py`` checks both name the same groups, topics and tables.
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.projections.base import Projection
from consumers.projections.cart_projection import CartProjection
from consumers.projections.order_state import OrderStateProjection
from consumers.projections.sales_projection import SalesProjection
from shopstream.errors import UsageError
from shopstream.groups import CART_PROJECTION, ORDER_STATE, SALES_PROJECTION

GROUPS: dict[str, Callable[[], Projection]] = {
    ORDER_STATE.name: OrderStateProjection,
    CART_PROJECTION.name: CartProjection,
    SALES_PROJECTION.name: SalesProjection,
}


def projection_for(group_id: str) -> Projection:
    factory = GROUPS.get(group_id)
    if factory is None:
        known = ", ".join(GROUPS)
        raise UsageError(f"unknown group {group_id!r} (known groups: {known})")
    return factory()
