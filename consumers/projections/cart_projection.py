"""The ``cart-projection`` group: every cart and its items, from ``cart-events``.

``carts`` holds one row per cart: its customer, status (``ACTIVE`` until
``CartCheckedOut``, then ``CHECKED_OUT`` with the ``order_id``), item count (the sum of
the quantities), subtotal (sum of quantity x unit price), currency, creation time and
last activity. ``cart_items`` holds one row per sku in a cart: quantity and unit
price. A line removed down to 0 is deleted.

Rules:

* ``CartItemAdded`` creates the cart on its first item; the cart's currency is the
  currency of that item. Adding a sku already in the cart adds to its quantity and
  re-prices the whole line at the new unit price (the latest price wins).
* ``CartItemRemoved`` takes quantity off a line.
* ``CartCheckedOut`` closes the cart; nothing changes it afterwards.
* ``last_activity_at`` is the latest ``occurred_at`` of the events applied to the cart.

Refused events (dead-lettered by the runtime, no state changed), checked in this order:

* ``unknown-cart`` — a removal or a checkout of a cart that has no items ever added;
* ``cart-checked-out`` — any event for a cart already checked out;
* ``customer-mismatch`` — an event naming another customer than the cart's;
* ``currency-mismatch`` — an item in a currency other than the cart's;
* ``item-not-in-cart`` — removing a sku that is not in the cart;
* ``insufficient-quantity`` — removing more than the cart holds of a sku;
* ``empty-cart`` — checking out a cart whose items were all removed.

Abandoned carts are not a status written here: they are ``ACTIVE`` carts whose last
activity is older than a threshold, answered by a query (``shopstream query carts``).

Like ``order-state``, a batch costs a fixed number of round trips: the batch's carts
and their items are loaded in one query each, events are applied in memory, and the
changes are written with executemany inserts, updates and deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, select, update

from consumers.projections.base import Envelope, Projection, Rejection
from shopstream.db.bulk import execute_rows, insert_rows, key_in
from shopstream.db.models import Cart, CartItem
from shopstream.events import CartCheckedOut, CartItemAdded, CartItemRemoved, DomainEvent
from shopstream.groups import CART_PROJECTION

carts: Table = Cart.__table__  # type: ignore[assignment]
cart_items: Table = CartItem.__table__  # type: ignore[assignment]


class CartStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CHECKED_OUT = "CHECKED_OUT"


class CartRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Line:
    quantity: int
    unit_price: Decimal


@dataclass
class CartState:
    """One cart as loaded (or created) within a batch, with its items."""

    values: dict[str, Any]
    items: dict[str, Line]
    stored_items: dict[str, Line] = field(default_factory=dict)
    """The items as they are in the database (empty for a new cart)."""
    is_new: bool = False
    dirty: bool = False

    @property
    def status(self) -> CartStatus:
        return CartStatus(self.values["status"])


class CartProjection(Projection):
    group_id = CART_PROJECTION.name
    topic = CART_PROJECTION.topic
    tables = (cart_items, carts)

    def apply(self, connection: Connection, batch: Sequence[Envelope]) -> list[Rejection]:
        states = load_carts(connection, {env.event.key for env in batch})
        rejections: list[Rejection] = []
        for env in batch:
            try:
                apply_event(states, env.event)
            except CartRefused as refused:
                rejections.append(Rejection(env, refused.reason, refused.detail))
        write_carts(connection, states)
        return rejections


# -- rules ------------------------------------------------------------------------------


def apply_event(states: dict[str, CartState], event: DomainEvent) -> None:
    """Apply one cart event to ``states`` (in place), or raise CartRefused."""
    if isinstance(event, CartItemAdded):
        state = states.get(event.cart_id)
        if state is None:
            state = _new_cart(event)
            states[event.cart_id] = state
        _check_open(state, event.customer_id, event.event_type)
        _add(state, event)
    elif isinstance(event, CartItemRemoved):
        state = _existing(states, event.cart_id, event.event_type)
        _check_open(state, event.customer_id, event.event_type)
        _remove(state, event)
    elif isinstance(event, CartCheckedOut):
        state = _existing(states, event.cart_id, event.event_type)
        _check_open(state, event.customer_id, event.event_type)
        _check_out(state, event)
    else:
        raise CartRefused("unsupported-event", f"{event.event_type} is not a cart event")
    _touch(state, event.occurred_at)


def _existing(states: dict[str, CartState], cart_id: str, event_type: str) -> CartState:
    state = states.get(cart_id)
    if state is None:
        raise CartRefused("unknown-cart", f"{event_type} for unknown cart {cart_id}")
    return state


def _check_open(state: CartState, customer_id: str, event_type: str) -> None:
    values = state.values
    if state.status is CartStatus.CHECKED_OUT:
        raise CartRefused(
            "cart-checked-out",
            f"{event_type} for cart {values['cart_id']} checked out as order {values['order_id']}",
        )
    if customer_id != values["customer_id"]:
        raise CartRefused(
            "customer-mismatch",
            f"{event_type} names customer {customer_id}, "
            f"cart {values['cart_id']} belongs to {values['customer_id']}",
        )


def _add(state: CartState, event: CartItemAdded) -> None:
    currency = state.values["currency"]
    if event.currency != currency:
        raise CartRefused(
            "currency-mismatch",
            f"item in {event.currency}, cart {event.cart_id} is in {currency}",
        )
    held = state.items.get(event.sku)
    quantity = event.quantity + (held.quantity if held else 0)
    state.items[event.sku] = Line(quantity, event.unit_price)


def _remove(state: CartState, event: CartItemRemoved) -> None:
    held = state.items.get(event.sku)
    if held is None:
        raise CartRefused("item-not-in-cart", f"sku {event.sku} is not in cart {event.cart_id}")
    if event.quantity > held.quantity:
        raise CartRefused(
            "insufficient-quantity",
            f"removing {event.quantity} of sku {event.sku}, cart {event.cart_id} "
            f"holds {held.quantity}",
        )
    left = held.quantity - event.quantity
    if left:
        state.items[event.sku] = Line(left, held.unit_price)
    else:
        del state.items[event.sku]


def _check_out(state: CartState, event: CartCheckedOut) -> None:
    if not state.items:
        raise CartRefused("empty-cart", f"checkout of empty cart {event.cart_id}")
    state.values.update(
        status=CartStatus.CHECKED_OUT.value,
        order_id=event.order_id,
        checked_out_at=event.occurred_at,
    )


def _touch(state: CartState, at: datetime) -> None:
    values = state.values
    values["item_count"] = sum(line.quantity for line in state.items.values())
    values["subtotal"] = sum(
        (line.unit_price * line.quantity for line in state.items.values()), Decimal("0.00")
    )
    values["last_activity_at"] = max(values["last_activity_at"], at)
    state.dirty = True


def _new_cart(event: CartItemAdded) -> CartState:
    values: dict[str, Any] = {
        "cart_id": event.cart_id,
        "customer_id": event.customer_id,
        "status": CartStatus.ACTIVE.value,
        "item_count": 0,
        "subtotal": Decimal("0.00"),
        "currency": event.currency,
        "order_id": None,
        "created_at": event.occurred_at,
        "last_activity_at": event.occurred_at,
        "checked_out_at": None,
    }
    return CartState(values=values, items={}, is_new=True)


# -- storage ----------------------------------------------------------------------------


def load_carts(connection: Connection, cart_ids: set[str]) -> dict[str, CartState]:
    """The stored carts among ``cart_ids``, with their items (two queries)."""
    ids = sorted(cart_ids)
    states: dict[str, CartState] = {}
    if not ids:
        return states
    for row in connection.execute(select(carts).where(key_in(connection, carts.c.cart_id, ids))):
        states[row.cart_id] = CartState(values=dict(row._mapping), items={})
    items = select(cart_items).where(key_in(connection, cart_items.c.cart_id, ids))
    for item in connection.execute(items):
        state = states[item.cart_id]
        state.items[item.sku] = Line(item.quantity, item.unit_price)
    for state in states.values():
        state.stored_items = dict(state.items)
    return states


def write_carts(connection: Connection, states: dict[str, CartState]) -> None:
    changed = [state for state in states.values() if state.dirty]
    new = [state.values for state in changed if state.is_new]
    updated = [state.values for state in changed if not state.is_new]
    insert_rows(connection, carts, new)
    if updated:
        execute_rows(connection, _UPDATE_CART, [_update_params(values) for values in updated])
    _write_items(connection, changed)


def _write_items(connection: Connection, changed: list[CartState]) -> None:
    deleted: list[dict[str, Any]] = []
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for state in changed:
        cart_id = state.values["cart_id"]
        before, after = state.stored_items, state.items
        deleted += [_item_key(cart_id, sku) for sku in before if sku not in after]
        for sku, line in after.items():
            row = {"cart_id": cart_id, "sku": sku, "quantity": line.quantity}
            if sku not in before:
                inserted.append({**row, "unit_price": line.unit_price})
            elif before[sku] != line:
                updated.append(
                    {
                        **_item_key(cart_id, sku),
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                    }
                )
    if deleted:
        execute_rows(connection, _DELETE_ITEM, deleted)
    if updated:
        execute_rows(connection, _UPDATE_ITEM, updated)
    insert_rows(connection, cart_items, inserted)


_MUTABLE = (
    "status",
    "item_count",
    "subtotal",
    "order_id",
    "last_activity_at",
    "checked_out_at",
)

_UPDATE_CART = (
    update(carts)
    .where(carts.c.cart_id == bindparam("b_cart_id"))
    .values({name: bindparam(name) for name in _MUTABLE})
)

_ITEM_KEY = and_(
    cart_items.c.cart_id == bindparam("b_cart_id"), cart_items.c.sku == bindparam("b_sku")
)
_DELETE_ITEM = delete(cart_items).where(_ITEM_KEY)
_UPDATE_ITEM = (
    update(cart_items)
    .where(_ITEM_KEY)
    .values(quantity=bindparam("quantity"), unit_price=bindparam("unit_price"))
)


def _item_key(cart_id: str, sku: str) -> dict[str, Any]:
    return {"b_cart_id": cart_id, "b_sku": sku}


def _update_params(values: dict[str, Any]) -> dict[str, Any]:
    return {"b_cart_id": values["cart_id"], **{name: values[name] for name in _MUTABLE}}
