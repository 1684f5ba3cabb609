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
from consumers.projections.order_state import OrderStateProjection, orders
from consumers.runtime.db_refusals import CAREFUL_PIECES, MIN_PIECE, RefusalIsolator, db_refusal
from shopstream.events import CartItemAdded, DomainEvent, OrderCreated, OrderLine
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


def test_after_a_refusal_batches_are_applied_in_pieces_and_only_one_is_searched(
    engine: Engine,
) -> None:
    """SQLite names no row: the poison is found by bisection. PostgreSQL quotes the
    refused row: three more applies find it. Either way the next batches go in pieces,
    so a refusal wastes a piece's work, not a whole batch's."""
    install_refusal_trigger(engine, "orders")
    isolator = RefusalIsolator(OrderStateProjection().apply)
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
        # the whole batch, then before / the named event / after; then the same in a piece
        assert applies == [4, CAREFUL_PIECES + 3, CAREFUL_PIECES + 3]
        return
    piece = 512 // CAREFUL_PIECES
    assert applies[0] <= 1 + 2 * math.ceil(math.log2(512))
    assert applies[1] == applies[2] <= CAREFUL_PIECES + 2 * math.ceil(math.log2(piece))


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
            locker.execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout = 0")
                with pytest.raises(OperationalError) as caught:
                    connection.execute(orders.delete())
        finally:
            locker.rollback()
            locker.close()
    assert db_refusal(caught.value) is None
    assert db_refusal(ConnectionResetError("gone")) is None
