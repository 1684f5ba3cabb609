"""Events the database refuses, isolated by bisection with savepoints (no Kafka here:
the projections and the isolator against real SQLite and PostgreSQL databases)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from consumers.projections.base import Envelope
from consumers.projections.cart_projection import CartProjection, carts
from consumers.projections.order_state import OrderStateProjection, order_status_history, orders
from consumers.runtime.db_refusals import CAREFUL_PIECES, MIN_PIECE, RefusalIsolator, db_refusal
from shopstream.events import CartItemAdded, DomainEvent, OrderCreated, OrderLine, OrderPaid
from tests.support.poison import (
    REFUSED_CUSTOMER,
    TRIGGER_MESSAGE,
    install_refusal_trigger,
    unvalidated,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def created(index: int, customer: str = "cust-1") -> OrderCreated:
    line = OrderLine("SKU-1", 1, Decimal("5.00"))
    return OrderCreated(
        order_id=f"o-{index}",
        customer_id=customer,
        lines=(line,),
        total=line.amount,
        currency="EUR",
    )


def paid(index: int) -> OrderPaid:
    return OrderPaid(
        order_id=f"o-{index}", payment_id=f"p-{index}", amount=Decimal("5.00"), currency="EUR"
    )


def envelopes(events: list[DomainEvent], start: int = 0) -> list[Envelope]:
    return [Envelope(e, "t", i % 3, start + i) for i, e in enumerate(events)]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_exactly_the_refused_events_are_isolated_the_rest_applied_once(engine: Engine) -> None:
    install_refusal_trigger(engine, "orders")
    poison = {17, 150, 151}
    events: list[DomainEvent] = [
        created(i, REFUSED_CUSTOMER if i in poison else "cust-1") for i in range(256)
    ]
    isolator = RefusalIsolator(OrderStateProjection().apply)
    with engine.begin() as connection:
        outcome = isolator.apply_batch(connection, envelopes(events))
    refused = {r.envelope.offset for r in outcome.refused}
    assert refused == poison
    assert all(TRIGGER_MESSAGE in r.refusal.message for r in outcome.refused)
    codes = {r.refusal.code for r in outcome.refused}
    assert codes == (
        {"23514"} if engine.dialect.name == "postgresql" else {"SQLITE_CONSTRAINT_TRIGGER"}
    )
    assert outcome.rejections == []
    assert count(engine, orders) == 256 - len(poison)
    # about log2(n) extra applies per poison event, not n
    assert outcome.applies <= 1 + len(poison) * 2 * math.ceil(math.log2(256))


@pytest.mark.parametrize("independent_keys", [False, True], ids=["by-position", "by-key"])
def test_after_a_refusal_batches_are_applied_in_pieces_and_only_one_is_searched(
    engine: Engine, independent_keys: bool
) -> None:
    """SQLite names no row: the poison is found by bisection. PostgreSQL quotes the
    refused row: three more applies find it (before / the named event / after), or two
    when keys are independent (every other key at once / the named event's key). Either
    way the next batches go in pieces, so a refusal wastes a piece's work, not a whole
    batch's."""
    install_refusal_trigger(engine, "orders")
    isolator = RefusalIsolator(OrderStateProjection().apply, independent_keys)
    applies = []
    for batch in range(3):
        events: list[DomainEvent] = [
            created(batch * 1000 + i, REFUSED_CUSTOMER if i == 300 else "cust-1")
            for i in range(512)
        ]
        with engine.begin() as connection:
            outcome = isolator.apply_batch(connection, envelopes(events, batch * 1000))
        assert [r.envelope.offset for r in outcome.refused] == [batch * 1000 + 300]
        applies.append(outcome.applies)
    assert count(engine, orders) == 3 * 511
    with engine.begin() as connection:  # a clean batch after them
        clean: list[DomainEvent] = [created(9000 + i) for i in range(64)]
        outcome = isolator.apply_batch(connection, envelopes(clean))
    assert outcome.refused == []
    # still in pieces for a while (pieces of at least MIN_PIECE events)
    assert outcome.applies == min(CAREFUL_PIECES, 64 // MIN_PIECE) > 1
    if engine.dialect.name == "postgresql":
        # the whole batch, then the search; then the same in a piece
        search = 2 if independent_keys else 3
        assert applies == [1 + search, CAREFUL_PIECES + search, CAREFUL_PIECES + search]
        return
    assert applies[0] <= 1 + 2 * math.ceil(math.log2(512))
    if independent_keys:  # pieces of uneven sizes (by the keys' hashes)
        assert max(applies[1:]) <= CAREFUL_PIECES + 2 * math.ceil(math.log2(512))
        return
    piece = 512 // CAREFUL_PIECES
    assert applies[1] == applies[2] <= CAREFUL_PIECES + 2 * math.ceil(math.log2(piece))


def test_pieces_cut_by_key_keep_each_orders_events_together_and_in_order(
    engine: Engine,
) -> None:
    """Orders created and paid in the same batches, a poison among them, applied in
    pieces cut by key: every order is written once per batch (inserted, paid), the
    poison's own later event is refused by the state machine (its order was never
    created), and every other order ends paid, its history in order."""
    install_refusal_trigger(engine, "orders")
    isolator = RefusalIsolator(OrderStateProjection().apply, independent_keys=True)
    isolator.careful_batches_left = 1  # as after a refusal: the batch goes in pieces
    events: list[DomainEvent] = []
    for i in range(200):
        events.append(created(i, REFUSED_CUSTOMER if i == 77 else "cust-1"))
        if i >= 3:
            events.append(paid(i - 3))
    events += [paid(i) for i in range(197, 200)]
    with engine.begin() as connection:
        outcome = isolator.apply_batch(connection, envelopes(events))
    assert outcome.applies > CAREFUL_PIECES  # in pieces, then the search
    assert [r.envelope.event.key for r in outcome.refused] == ["o-77"]
    assert [(r.envelope.event.key, r.reason) for r in outcome.rejections] == [
        ("o-77", "unknown-order")
    ]
    with engine.connect() as connection:
        statuses = {
            key: status
            for key, status in connection.execute(select(orders.c.order_id, orders.c.status))
        }
        history = connection.execute(
            select(order_status_history.c.order_id, order_status_history.c.to_status).order_by(
                order_status_history.c.order_id, order_status_history.c.seq
            )
        ).all()
    assert len(statuses) == 199 and set(statuses.values()) == {"PAID"}
    assert len(history) == 2 * 199
    assert all(
        [status for order, status in history if order == key] == ["PENDING_PAYMENT", "PAID"]
        for key in statuses
    )


def test_values_beyond_the_columns_are_refused_on_postgresql_and_overflow_on_both(
    engine: Engine,
) -> None:
    """A sku far longer than its column and a NUL in a text (PostgreSQL refuses, SQLite
    stores them), and a cart subtotal beyond NUMERIC / SQLite's 64-bit integer cents
    (built without validation: these must reach the database whatever it accepts)."""
    postgres = engine.dialect.name == "postgresql"

    def add(cart: str, sku: str, quantity: int = 1, price: str = "1.00") -> CartItemAdded:
        return CartItemAdded(
            cart_id=cart,
            customer_id="c",
            sku=sku,
            quantity=quantity,
            unit_price=Decimal(price),
            currency="EUR",
        )

    events: list[DomainEvent] = [add(f"cart-{i}", "SKU-1") for i in range(40)]
    events[5] = unvalidated(add("cart-long", "SKU-1"), sku="S" * 10_000)
    events[20] = unvalidated(add("cart-nul", "SKU-1"), sku="SKU\x00NUL")
    events[33] = unvalidated(
        add("cart-big", "SKU-2"), quantity=2**31 - 1, unit_price=Decimal("9999999999.99")
    )
    isolator = RefusalIsolator(CartProjection().apply)
    with engine.begin() as connection:
        outcome = isolator.apply_batch(connection, envelopes(events))
    refused = {r.envelope.offset: r.refusal for r in outcome.refused}
    assert set(refused) == ({5, 20, 33} if postgres else {33})
    if postgres:
        assert refused[5].code == "22001"  # string data right truncation
        assert "too long" in refused[5].message
        assert refused[20].code == "DataError"  # refused by psycopg before sending
        assert refused[33].code == "22003"  # numeric value out of range
    else:
        # the Money type refuses what NUMERIC(18, 2) would, before sqlite3's own
        # 64-bit OverflowError: the same refusal as PostgreSQL's
        assert refused[33].code == "DataError"
        assert "does not fit NUMERIC(18, 2)" in refused[33].message
    assert count(engine, carts) == 40 - len(refused)


def test_transient_errors_are_not_refusals(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with pytest.raises(OperationalError) as caught, engine.begin() as connection:
            connection.execute(text("SET LOCAL statement_timeout = 1"))
            connection.execute(text("SELECT pg_sleep(1)"))
    else:
        locker = engine.raw_connection()
        try:
            locker.execute("BEGIN EXCLUSIVE")
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout = 0")
                with pytest.raises(OperationalError) as caught:
                    connection.execute(orders.delete())
        finally:
            locker.rollback()
            locker.close()
    assert db_refusal(caught.value) is None
    assert db_refusal(ConnectionResetError("gone")) is None
