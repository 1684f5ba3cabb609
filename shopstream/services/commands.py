"""The services' commands and queries, checked against the service's own tables.

Each command runs inside the caller's transaction (see
:mod:`shopstream.services.transactions`): it reads what it needs, locking the
aggregate's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer
serializes anyway), checks the command, and only then writes the new state and returns
the events to put in the outbox. A refusal (:class:`Refused`) is raised before anything
is written (the executor relies on it: no savepoint), so a refused command never
changes state nor emits an event. A command's answer is built from what it read and
wrote, not read back: a few statements per command (see docs/services.md).

Values are checked by the typed events' own validation (names the field, 422): a
command builds its events before it writes. Prices come from ``service_products``,
never from the client. Order transitions follow the order state machine that the
``order-state`` group enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Table,
    TextualSelect,
    Update,
    bindparam,
    delete,
    select,
    text,
    update,
)

from shopstream.db.bulk import dialect_insert
from shopstream.db.models import (
    ServiceCart,
    ServiceCartItem,
    ServiceOrder,
    ServiceOrderLine,
    ServiceProduct,
)
from shopstream.domain.order import OrderStatus, TransitionRefused, check_payment, next_status
from shopstream.events import (
    CartCheckedOut,
    CartItemAdded,
    CartItemRemoved,
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
    new_event_id,
)
from shopstream.simulation.simulator import ProductCatalog

products: Table = ServiceProduct.__table__  # type: ignore[assignment]
carts: Table = ServiceCart.__table__  # type: ignore[assignment]
cart_items: Table = ServiceCartItem.__table__  # type: ignore[assignment]
orders: Table = ServiceOrder.__table__  # type: ignore[assignment]
order_lines: Table = ServiceOrderLine.__table__  # type: ignore[assignment]


OPEN = "OPEN"
CHECKED_OUT = "CHECKED_OUT"
ZERO = Decimal("0.00")


def _insert_new(table: Table) -> TextualSelect:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` every column (the new row, or no
    row when the key exists), bound by column name, on SQLite and PostgreSQL alike.
    Written as typed text because SQLAlchemy compiles its dialect ``Insert`` with
    ``on_conflict_do_nothing()`` anew on every execution (no cache key): 0.3-0.5 ms of
    CPU per command."""
    names = [column.name for column in table.c]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + name for name in names)}) "
        f"ON CONFLICT DO NOTHING RETURNING {', '.join(names)}"
    )
    binds = [bindparam(column.name, type_=column.type) for column in table.c]
    return text(sql).bindparams(*binds).columns(*table.c)


_INSERT_NEW_CART = _insert_new(carts)
_INSERT_NEW_ORDER = _insert_new(orders)

# The commands' statements are built once: SQLAlchemy then reuses each one's cache key
# and compiled form (a statement built per call cost about 165 µs of CPU to execute on
# PostgreSQL here, a prebuilt one 80 µs; a command runs 7-10 of them).
_PRODUCT = select(products).where(products.c.sku == bindparam("sku"))
_PRODUCTS = select(products).order_by(products.c.sku)
_INSERT_ITEM = cart_items.insert()
_ITEM_WHERE = (
    cart_items.c.cart_id == bindparam("item_cart_id"),
    cart_items.c.sku == bindparam("item_sku"),
)
_SET_ITEM_QUANTITY = (
    update(cart_items).where(*_ITEM_WHERE).values(quantity=bindparam("new_quantity"))
)
_DELETE_ITEM = delete(cart_items).where(*_ITEM_WHERE)
_TOUCH_CART = (
    update(carts).where(carts.c.cart_id == bindparam("cart")).values(updated_at=bindparam("now"))
)
_CLOSE_CART = (
    update(carts)
    .where(carts.c.cart_id == bindparam("cart"))
    .values(status=CHECKED_OUT, order_id=bindparam("new_order_id"), updated_at=bindparam("now"))
)
_INSERT_LINES = order_lines.insert()


class Refused(Exception):
    """A command the current state does not allow: 404 (unknown aggregate) or 409
    (with the aggregate's current state)."""

    def __init__(
        self, status: int, reason: str, detail: str, state: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.state = state

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.reason, "detail": self.detail}
        if self.state is not None:
            body["state"] = self.state
        return body


@dataclass(frozen=True)
class Result:
    """What a command answers, and the events its transaction puts in the outbox."""

    status: int
    body: dict[str, Any]
    events: Sequence[DomainEvent] = field(default_factory=tuple)


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- products ------------------------------------------------------------------------


def seed_products(connection: Connection, catalog: ProductCatalog) -> int:
    """Insert the catalog's products that are missing; returns how many were added."""
    statement = (
        dialect_insert(connection, products).on_conflict_do_nothing().returning(products.c.sku)
    )
    added = 0
    for product in catalog.products:
        added += len(
            connection.execute(
                statement.values(
                    sku=product.sku,
                    name=product.name,
                    category=product.category,
                    price=product.price,
                    currency=catalog.currency,
                )
            ).all()
        )
    return added


def _product_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "sku": row.sku,
        "name": row.name,
        "category": row.category,
        "price": _money(row.price),
        "currency": row.currency,
    }


def list_products(connection: Connection) -> list[dict[str, Any]]:
    return [_product_view(row) for row in connection.execute(_PRODUCTS)]


def get_product(connection: Connection, sku: str) -> dict[str, Any]:
    row = connection.execute(_PRODUCT, {"sku": sku}).one_or_none()
    if row is None:
        raise Refused(404, "unknown-product", f"no product {sku}")
    return _product_view(row)


# -- carts ---------------------------------------------------------------------------


Items = dict[str, tuple[int, Decimal]]
"""A cart's items: sku → (quantity, unit price)."""

_CART = select(carts).where(carts.c.cart_id == bindparam("cart_id"))
_CART_LOCKED = _CART.with_for_update()
_CART_ITEMS = select(cart_items.c.sku, cart_items.c.quantity, cart_items.c.unit_price).where(
    cart_items.c.cart_id == bindparam("cart_id")
)


def _cart(connection: Connection, cart_id: str, *, lock: bool) -> tuple[Row[Any] | None, Items]:
    """The cart's row (locked until commit with ``lock``) and its items.

    Two queries, the items read after the lock: a query that locks the cart and joins
    its items reads the items as of its start, so one that waited for the lock while
    another command changed them would see them stale (and lose that update)."""
    cart = connection.execute(_CART_LOCKED if lock else _CART, {"cart_id": cart_id}).one_or_none()
    if cart is None:
        return None, {}
    rows = connection.execute(_CART_ITEMS, {"cart_id": cart_id})
    return cart, {row.sku: (row.quantity, row.unit_price) for row in rows}


def _cart_view(cart: Row[Any], items: Items) -> dict[str, Any]:
    subtotal = sum((price * quantity for quantity, price in items.values()), ZERO)
    return {
        "cart_id": cart.cart_id,
        "customer_id": cart.customer_id,
        "status": cart.status,
        "currency": cart.currency,
        "order_id": cart.order_id,
        "items": [
            {"sku": sku, "quantity": quantity, "unit_price": _money(price)}
            for sku, (quantity, price) in sorted(items.items())
        ],
        "subtotal": _money(subtotal),
    }


def get_cart(connection: Connection, cart_id: str) -> dict[str, Any]:
    cart, items = _cart(connection, cart_id, lock=False)
    if cart is None:
        raise Refused(404, "unknown-cart", f"no cart {cart_id}")
    return _cart_view(cart, items)


def _open_cart(cart: Row[Any], items: Items, command: str) -> None:
    if cart.status != OPEN:
        raise Refused(
            409,
            "cart-checked-out",
            f"cannot {command}: cart {cart.cart_id} is {cart.status}",
            _cart_view(cart, items),
        )


def add_item(
    connection: Connection, now: datetime, cart_id: str, customer_id: str, sku: str, quantity: int
) -> Result:
    product = connection.execute(_PRODUCT, {"sku": sku}).one_or_none()
    if product is None:
        raise Refused(404, "unknown-product", f"no product {sku}")
    event = CartItemAdded(
        cart_id=cart_id,
        customer_id=customer_id,
        sku=sku,
        quantity=quantity,
        unit_price=product.price,
        currency=product.currency,
        occurred_at=now,
    )
    cart, items = _cart(connection, cart_id, lock=True)
    opened = False
    if cart is None:  # the first item opens the cart (its checks pass by construction)
        cart = connection.execute(
            _INSERT_NEW_CART,
            {
                "cart_id": cart_id,
                "customer_id": customer_id,
                "status": OPEN,
                "currency": product.currency,
                "order_id": None,
                "created_at": now,
                "updated_at": now,
            },
        ).one_or_none()
        opened = cart is not None
        if cart is None:  # opened by a concurrent request since the read
            cart, items = _cart(connection, cart_id, lock=True)
            assert cart is not None
    _open_cart(cart, items, "add items")
    if cart.customer_id != customer_id or cart.currency != product.currency:
        which = "customer" if cart.customer_id != customer_id else "currency"
        raise Refused(
            409,
            f"cart-{which}-mismatch",
            f"cart {cart_id} belongs to another {which}",
            _cart_view(cart, items),
        )
    held = items.get(sku)
    if held is None:
        connection.execute(
            _INSERT_ITEM,
            {"cart_id": cart_id, "sku": sku, "quantity": quantity, "unit_price": product.price},
        )
        items[sku] = (quantity, product.price)
    else:
        connection.execute(
            _SET_ITEM_QUANTITY,
            {"item_cart_id": cart_id, "item_sku": sku, "new_quantity": held[0] + quantity},
        )
        items[sku] = (held[0] + quantity, held[1])
    if not opened:
        connection.execute(_TOUCH_CART, {"cart": cart_id, "now": now})
    return Result(200, _cart_view(cart, items), (event,))


def remove_item(
    connection: Connection, now: datetime, cart_id: str, sku: str, quantity: int | None
) -> Result:
    cart, items = _cart(connection, cart_id, lock=True)
    if cart is None:
        raise Refused(404, "unknown-cart", f"no cart {cart_id}")
    _open_cart(cart, items, "remove items")
    if sku not in items:
        raise Refused(404, "not-in-cart", f"cart {cart_id} holds no {sku}")
    held, price = items[sku]
    removing = held if quantity is None else quantity
    event = CartItemRemoved(
        cart_id=cart_id, customer_id=cart.customer_id, sku=sku, quantity=removing, occurred_at=now
    )
    if removing > held:
        raise Refused(
            409,
            "remove-too-many",
            f"cart {cart_id} holds {held} of {sku}, cannot remove {removing}",
            _cart_view(cart, items),
        )
    item = {"item_cart_id": cart_id, "item_sku": sku}
    if removing == held:
        connection.execute(_DELETE_ITEM, item)
        del items[sku]
    else:
        connection.execute(_SET_ITEM_QUANTITY, {**item, "new_quantity": held - removing})
        items[sku] = (held - removing, price)
    connection.execute(_TOUCH_CART, {"cart": cart_id, "now": now})
    return Result(200, _cart_view(cart, items), (event,))


def checkout(connection: Connection, now: datetime, cart_id: str, order_id: str | None) -> Result:
    """Close the cart and create its order: CartCheckedOut, then OrderCreated."""
    cart, items = _cart(connection, cart_id, lock=True)
    if cart is None:
        raise Refused(404, "unknown-cart", f"no cart {cart_id}")
    _open_cart(cart, items, "check out")
    if not items:
        raise Refused(409, "empty-cart", f"cart {cart_id} is empty", _cart_view(cart, items))
    order_id = order_id or new_event_id()
    lines = tuple(
        OrderLine(sku, quantity, price) for sku, (quantity, price) in sorted(items.items())
    )
    created = OrderCreated(
        order_id=order_id,
        customer_id=cart.customer_id,
        lines=lines,
        total=sum((line.amount for line in lines), ZERO),
        currency=cart.currency,
        cart_id=cart_id,
        occurred_at=now,
    )
    checked_out = CartCheckedOut(
        cart_id=cart_id, customer_id=cart.customer_id, order_id=order_id, occurred_at=now
    )
    order = connection.execute(
        _INSERT_NEW_ORDER,
        {
            "order_id": order_id,
            "customer_id": cart.customer_id,
            "cart_id": cart_id,
            "status": OrderStatus.PENDING_PAYMENT.value,
            "total": created.total,
            "currency": created.currency,
            "payment_id": None,
            "carrier": None,
            "tracking_number": None,
            "cancel_reason": None,
            "created_at": now,
            "updated_at": now,
        },
    ).one_or_none()
    if order is None:  # nothing written yet: the insert did nothing
        raise Refused(
            409, "order-exists", f"order {order_id} already exists", get_order(connection, order_id)
        )
    connection.execute(
        _INSERT_LINES,
        [
            {
                "order_id": order_id,
                "line_no": number,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
            }
            for number, line in enumerate(created.lines, start=1)
        ],
    )
    connection.execute(_CLOSE_CART, {"cart": cart_id, "new_order_id": order_id, "now": now})
    view_lines = [(line.sku, line.quantity, line.unit_price) for line in created.lines]
    return Result(201, _order_view(order._asdict(), view_lines), (checked_out, created))


# -- orders --------------------------------------------------------------------------


Lines = list[tuple[str, int, Decimal]]
"""An order's lines in order: (sku, quantity, unit price)."""

_ORDER_WITH_LINES = (
    select(
        orders,
        order_lines.c.sku.label("line_sku"),
        order_lines.c.quantity.label("line_quantity"),
        order_lines.c.unit_price.label("line_price"),
    )
    .select_from(orders.outerjoin(order_lines, order_lines.c.order_id == orders.c.order_id))
    .where(orders.c.order_id == bindparam("order_id"))
    .order_by(order_lines.c.line_no)
)
_ORDER_WITH_LINES_LOCKED = _ORDER_WITH_LINES.with_for_update(of=orders)


def _order(
    connection: Connection, order_id: str, *, lock: bool
) -> tuple[dict[str, Any] | None, Lines]:
    """The order's columns (its row locked until commit with ``lock``) and its lines,
    in one query. Unlike a cart's items (see :func:`_cart`), an order's lines never
    change after the transaction that created the order, so the lines this query
    joins are current even when it waited for the lock."""
    query = _ORDER_WITH_LINES_LOCKED if lock else _ORDER_WITH_LINES
    rows = connection.execute(query, {"order_id": order_id}).all()
    if not rows:
        return None, []
    order = {column.name: getattr(rows[0], column.name) for column in orders.c}
    lines = [
        (row.line_sku, row.line_quantity, row.line_price)
        for row in rows
        if row.line_sku is not None
    ]
    return order, lines


def _order_view(order: dict[str, Any], lines: Lines) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "customer_id": order["customer_id"],
        "cart_id": order["cart_id"],
        "status": order["status"],
        "total": _money(order["total"]),
        "currency": order["currency"],
        "lines": [
            {"sku": sku, "quantity": quantity, "unit_price": _money(price)}
            for sku, quantity, price in lines
        ],
        "payment_id": order["payment_id"],
        "carrier": order["carrier"],
        "tracking_number": order["tracking_number"],
        "cancel_reason": order["cancel_reason"],
        "created_at": _time(order["created_at"]),
        "updated_at": _time(order["updated_at"]),
    }


def get_order(connection: Connection, order_id: str) -> dict[str, Any]:
    order, lines = _order(connection, order_id, lock=False)
    if order is None:
        raise Refused(404, "unknown-order", f"no order {order_id}")
    return _order_view(order, lines)


OrderTransition = OrderPaid | OrderConfirmed | OrderShipped | OrderCancelled


@cache
def _order_update(columns: tuple[str, ...]) -> Update:
    """``UPDATE service_orders SET <columns>`` for one order, built once per set of
    columns (a transition sets the status, the time and its event's own columns)."""
    values = {name: bindparam(f"new_{name}", type_=orders.c[name].type) for name in columns}
    return update(orders).where(orders.c.order_id == bindparam("order")).values(values)


def transition(
    connection: Connection,
    now: datetime,
    order_id: str,
    make_event: Callable[[dict[str, Any]], OrderTransition],
) -> Result:
    """Apply an order event (paid, confirmed, shipped, cancelled) if the machine allows;
    ``make_event`` builds it from the locked order's row."""
    order, lines = _order(connection, order_id, lock=True)
    if order is None:
        raise Refused(404, "unknown-order", f"no order {order_id}")
    event = make_event(order)
    try:
        target = next_status(OrderStatus(order["status"]), event)
        if isinstance(event, OrderPaid):
            check_payment(order["total"], order["currency"], event)
    except TransitionRefused as exc:
        raise Refused(409, exc.reason, exc.detail, _order_view(order, lines)) from None
    values: dict[str, Any] = {"status": target.value, "updated_at": now}
    if isinstance(event, OrderPaid):
        values["payment_id"] = event.payment_id
    elif isinstance(event, OrderShipped):
        values.update(carrier=event.carrier, tracking_number=event.tracking_number)
    elif isinstance(event, OrderCancelled):
        values["cancel_reason"] = event.reason
    connection.execute(
        _order_update(tuple(values)),
        {"order": order_id, **{f"new_{name}": value for name, value in values.items()}},
    )
    return Result(200, _order_view({**order, **values}, lines), (event,))


def pay(
    connection: Connection,
    now: datetime,
    order_id: str,
    payment_id: str,
    amount: Decimal,
    currency: str | None,
) -> Result:
    """Pay in ``currency``, by default the order's own."""

    def paid(order: dict[str, Any]) -> OrderTransition:
        return OrderPaid(
            order_id=order_id,
            payment_id=payment_id,
            amount=amount,
            currency=currency or order["currency"],
            occurred_at=now,
        )

    return transition(connection, now, order_id, paid)


def confirm(connection: Connection, now: datetime, order_id: str) -> Result:
    event = OrderConfirmed(order_id=order_id, occurred_at=now)
    return transition(connection, now, order_id, lambda _order: event)


def ship(
    connection: Connection, now: datetime, order_id: str, carrier: str, tracking_number: str
) -> Result:
    event = OrderShipped(
        order_id=order_id, carrier=carrier, tracking_number=tracking_number, occurred_at=now
    )
    return transition(connection, now, order_id, lambda _order: event)


def cancel(connection: Connection, now: datetime, order_id: str, reason: str) -> Result:
    event = OrderCancelled(order_id=order_id, reason=reason, occurred_at=now)
    return transition(connection, now, order_id, lambda _order: event)
