"""OrderStateProjection.apply against a real (SQLite) database."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from consumers.projections.base import Envelope
from consumers.projections.order_state import (
    OrderStateProjection,
    order_lines,
    order_status_history,
    orders,
)
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import (
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def envelopes(*events: DomainEvent) -> list[Envelope]:
    return [Envelope(event, "order-events", 0, offset) for offset, event in enumerate(events)]


def created(order_id: str, total: str = "25.00") -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        customer_id="cust-1",
        lines=(
            OrderLine("SKU-1", 1, Decimal("5.00")),
            OrderLine("SKU-2", 2, Decimal(total) / 2 - Decimal("2.50")),
        ),
        total=Decimal(total),
        currency="EUR",
    )


def paid(order_id: str, amount: str = "25.00") -> OrderPaid:
    return OrderPaid(order_id=order_id, payment_id="pay", amount=Decimal(amount), currency="EUR")


def test_full_life_cycle_in_one_batch(engine: Engine) -> None:
    projection = OrderStateProjection()
    batch = envelopes(
        created("o-1"),
        paid("o-1"),
        OrderConfirmed(order_id="o-1"),
        OrderShipped(order_id="o-1", carrier="DHL", tracking_number="T"),
    )
    with engine.begin() as connection:
        assert projection.apply(connection, batch) == []
    with engine.connect() as connection:
        order = connection.execute(select(orders)).one()
        assert order.status == "SHIPPED"
        assert order.total == Decimal("25.00")
        assert order.amount_paid == Decimal("25.00")
        assert order.events_applied == 4
        assert order.shipped_at == batch[-1].event.occurred_at
        history = connection.execute(
            select(order_status_history.c.seq, order_status_history.c.to_status).order_by(
                order_status_history.c.seq
            )
        ).all()
        assert [tuple(row) for row in history] == [
            (1, "PENDING_PAYMENT"),
            (2, "PAID"),
            (3, "CONFIRMED"),
            (4, "SHIPPED"),
        ]
        assert len(connection.execute(select(order_lines)).all()) == 2


def test_refusals_change_nothing_and_carry_reasons(engine: Engine) -> None:
    projection = OrderStateProjection()
    with engine.begin() as connection:
        projection.apply(
            connection, envelopes(created("o-1"), OrderCancelled(order_id="o-1", reason="r"))
        )
    batch = envelopes(
        paid("o-1"),  # paying a cancelled order
        OrderShipped(order_id="o-2", carrier="DHL", tracking_number="T"),  # unknown order
        created("o-1"),  # duplicate order id
        created("o-3"),
        paid("o-3", "24.00"),  # wrong amount
        OrderShipped(order_id="o-3", carrier="DHL", tracking_number="T"),  # shipping unpaid
    )
    with engine.begin() as connection:
        rejections = projection.apply(connection, batch)
    assert [(r.reason, r.envelope.offset) for r in rejections] == [
        ("illegal-transition", 0),
        ("unknown-order", 1),
        ("duplicate-order", 2),
        ("payment-mismatch", 4),
        ("illegal-transition", 5),
    ]
    with engine.connect() as connection:
        statuses = dict(connection.execute(select(orders.c.order_id, orders.c.status)).all())
    assert statuses == {"o-1": "CANCELLED", "o-3": "PENDING_PAYMENT"}


def test_state_carries_across_batches(engine: Engine) -> None:
    projection = OrderStateProjection()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1")))
    with engine.begin() as connection:
        projection.apply(connection, envelopes(paid("o-1")))
    with engine.begin() as connection:
        assert projection.apply(connection, envelopes(OrderConfirmed(order_id="o-1"))) == []
    with engine.connect() as connection:
        assert connection.execute(select(orders.c.status)).scalar_one() == "CONFIRMED"
