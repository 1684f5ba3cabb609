"""The ``order-state`` group: the order state machine (:mod:`shopstream.domain.order`),
materialized into ``orders``, ``order_lines`` and ``order_status_history``.

An event that breaks the machine is refused (and dead-lettered by the runtime) with the
reason :func:`~shopstream.domain.order.next_status` or
:func:`~shopstream.domain.order.check_payment` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from consumers.projections.base import CommittedRows, Envelope, Projection, Rejection
from shopstream.db.bulk import insert_rows, key_in, update_rows
from shopstream.db.models import Order, OrderLineRow, OrderStatusHistory
from shopstream.domain.order import OrderStatus, TransitionRefused, check_payment, next_status
from shopstream.events import (
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderPaid,
    OrderShipped,
)
from shopstream.groups import ORDER_STATE


@dataclass
class OrderRow:
    """One order's row, loaded or created within a batch."""

    values: dict[str, Any]
    status: OrderStatus
    """The order's status (``values["status"]`` holds its text for the database)."""
    is_new: bool
    dirty: bool = False
    lines: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> OrderRow:
        """A copy to change, the row as the database holds it staying as it is (such
        rows carry no lines and are neither new nor dirty)."""
        return OrderRow(dict(self.values), self.status, is_new=False)


orders: Table = Order.__table__  # type: ignore[assignment]
order_lines: Table = OrderLineRow.__table__  # type: ignore[assignment]
order_status_history: Table = OrderStatusHistory.__table__  # type: ignore[assignment]


CACHED_ORDERS = 50_000
"""Open orders remembered between batches (about 1.5 KB each)."""
FINAL = frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED})
"""Statuses no valid event leaves: such orders are not remembered."""


class OrderStateProjection(Projection):
    """Orders this member committed are remembered (:class:`CommittedRows`): a batch
    loads from the database only the orders it does not know, in one query."""

    group_id = ORDER_STATE.name
    topic = ORDER_STATE.topic
    tables = (order_status_history, order_lines, orders)
    independent_keys = True  # an order's rows change only with that order's events

    def __init__(self, cached_orders: int = CACHED_ORDERS) -> None:
        self._known: CommittedRows[OrderRow] = CommittedRows(cached_orders)
        self._unconfirmed: dict[str, OrderRow] = {}
        """The rows as the batch's applied pieces left them, until its transaction is
        known to have committed: a later piece of the batch starts from them."""
        self._absent: set[str] = set()
        """Orders the batch's transaction looked for and did not find (a piece that
        creates one leaves it in :attr:`_unconfirmed`, which is looked at first)."""

    def begin(self) -> None:
        self._unconfirmed = {}  # never confirmed: those rows are not remembered
        self._absent = set()

    def committed(self) -> None:
        rows, self._unconfirmed = self._unconfirmed, {}
        self._absent = set()
        self._remember(rows)

    def _remember(self, rows: dict[str, OrderRow]) -> None:
        """Keep ``rows`` (as the database holds them) for later batches, open ones only."""
        self._known.keep((key, row) for key, row in rows.items() if row.status not in FINAL)

    def discard(self) -> None:
        self._unconfirmed = {}
        self._absent = set()
        self._known.clear()

    def apply(self, connection: Connection, batch: Sequence[Envelope]) -> list[Rejection]:
        """Apply one piece of the batch begun last (the whole batch, or part of it).

        It works on copies of its rows, taken from those an earlier piece of the batch
        left, else the remembered ones, else loaded (orders a piece found missing are
        not looked for again); when the database refuses the piece (rolled back to its
        savepoint by the caller), its rows go back as they were, so the next piece need
        not load them again."""
        keys = {env.event.key for env in batch}
        unconfirmed = self._unconfirmed
        earlier = {key: row for key in keys if (row := unconfirmed.pop(key, None)) is not None}
        known = self._known.take(keys - earlier.keys())
        missing = keys - earlier.keys() - known.keys() - self._absent
        if missing:
            loaded = self._load(connection, missing)
            known.update(loaded)
            self._absent.update(missing - loaded.keys())
        rows = {key: row.copy() for key, row in (earlier | known).items()}
        history: list[dict[str, Any]] = []
        rejections: list[Rejection] = []
        try:
            for env in batch:
                try:
                    self._apply_one(rows, env, history)
                except TransitionRefused as refused:
                    rejections.append(Rejection(env, refused.reason, refused.detail))
            self._write(connection, rows, history)
        except BaseException:
            unconfirmed.update(earlier)
            self._remember(known)
            raise
        for row in rows.values():  # now as the database holds them in this transaction
            row.is_new = row.dirty = False
            row.lines = []
        unconfirmed.update(rows)
        return rejections

    def _load(self, connection: Connection, order_ids: set[str]) -> dict[str, OrderRow]:
        if not order_ids:
            return {}
        query = select(orders).where(key_in(connection, orders.c.order_id, sorted(order_ids)))
        return {
            row.order_id: OrderRow(
                values=dict(row._mapping), status=OrderStatus(row.status), is_new=False
            )
            for row in connection.execute(query)
        }

    def _apply_one(
        self, rows: dict[str, OrderRow], env: Envelope, history: list[dict[str, Any]]
    ) -> None:
        event = env.event
        order_id = event.key
        row = rows.get(order_id)
        current = row.status if row is not None else None
        target = next_status(current, event)
        at = event.occurred_at
        if isinstance(event, OrderCreated):
            row = _created_row(event)
            rows[order_id] = row
        else:
            assert row is not None
            _transition(row, event, target, at)
        row.values["events_applied"] += 1
        row.dirty = True
        history.append(
            {
                "order_id": order_id,
                "seq": row.values["events_applied"],
                "from_status": current.value if current else None,
                "to_status": target.value,
                "event_type": event.event_type,
                "event_id": event.event_id,
                "occurred_at": at,
            }
        )

    def _write(
        self, connection: Connection, rows: dict[str, OrderRow], history: list[dict[str, Any]]
    ) -> None:
        new = [row for row in rows.values() if row.is_new and row.dirty]
        changed = [row for row in rows.values() if not row.is_new and row.dirty]
        if new:
            insert_rows(connection, orders, [row.values for row in new])
            insert_rows(connection, order_lines, [line for row in new for line in row.lines])
        update_rows(connection, orders, "order_id", _MUTABLE, [row.values for row in changed])
        insert_rows(connection, order_status_history, history)


_MUTABLE = (
    "status",
    "payment_id",
    "amount_paid",
    "carrier",
    "tracking_number",
    "cancel_reason",
    "paid_at",
    "confirmed_at",
    "shipped_at",
    "cancelled_at",
    "updated_at",
    "events_applied",
)


def _created_row(event: OrderCreated) -> OrderRow:
    at: datetime = event.occurred_at
    values: dict[str, Any] = {
        "order_id": event.order_id,
        "customer_id": event.customer_id,
        "status": OrderStatus.PENDING_PAYMENT.value,
        "total": event.total,
        "currency": event.currency,
        "cart_id": event.cart_id,
        "coupon_code": event.coupon_code,
        "payment_id": None,
        "amount_paid": None,
        "carrier": None,
        "tracking_number": None,
        "cancel_reason": None,
        "created_at": at,
        "paid_at": None,
        "confirmed_at": None,
        "shipped_at": None,
        "cancelled_at": None,
        "updated_at": at,
        "events_applied": 0,
    }
    lines = [
        {
            "order_id": event.order_id,
            "line_no": number,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
        }
        for number, line in enumerate(event.lines, start=1)
    ]
    return OrderRow(values=values, status=OrderStatus.PENDING_PAYMENT, is_new=True, lines=lines)


def _transition(row: OrderRow, event: DomainEvent, target: OrderStatus, at: datetime) -> None:
    values = row.values
    if isinstance(event, OrderPaid):
        check_payment(values["total"], values["currency"], event)
        values.update(payment_id=event.payment_id, amount_paid=event.amount, paid_at=at)
    elif isinstance(event, OrderConfirmed):
        values["confirmed_at"] = at
    elif isinstance(event, OrderShipped):
        values.update(carrier=event.carrier, tracking_number=event.tracking_number, shipped_at=at)
    elif isinstance(event, OrderCancelled):
        values.update(cancel_reason=event.reason, cancelled_at=at)
    row.status = target
    values["status"] = target.value
    values["updated_at"] = at
