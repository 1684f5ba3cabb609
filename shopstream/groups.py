"""THE consumer groups this project runs: each group's name, the topic it reads and the
tables it writes (data only).

The projections (:mod:`consumers.projections`, one class per group) take their group id
and topic from here; inspection (``inspect lag``) and the demo read it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import CART_TOPIC, ORDER_TOPIC


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    topic: str
    """The logical topic (without the settings' topic prefix)."""
    tables: tuple[str, ...]
    """The read-model tables the group alone writes."""


ORDER_STATE = GroupSpec(
    "order-state", ORDER_TOPIC, ("order_status_history", "order_lines", "orders")
)
CART_PROJECTION = GroupSpec("cart-projection", CART_TOPIC, ("cart_items", "carts"))
SALES_PROJECTION = GroupSpec(
    "sales-projection",
    ORDER_TOPIC,
    ("sales_order_lines", "sales_orders", "product_sales", "customer_stats"),
)

GROUP_SPECS: dict[str, GroupSpec] = {
    spec.name: spec for spec in (ORDER_STATE, CART_PROJECTION, SALES_PROJECTION)
}
PROJECT_GROUPS: tuple[str, ...] = tuple(GROUP_SPECS)
"""The group names, in the order they are listed and started."""
