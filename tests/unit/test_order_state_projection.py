"""OrderStateProjection.apply against a real (SQLite) database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from consumers.projections.base import CommittedRows, Envelope
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
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger


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


# -- orders remembered between batches -------------------------------------------------


def set_status_behind_its_back(engine: Engine, order_id: str, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(orders).where(orders.c.order_id == order_id).values(status=status)
        )


def test_committed_orders_are_not_reloaded_until_discarded(engine: Engine) -> None:
    projection = OrderStateProjection()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1"), created("o-2")))
    projection.committed()
    # Nobody else writes a member's partitions; here somebody does, to show which
    # state a batch works from: the remembered one, until discard() drops it.
    set_status_behind_its_back(engine, "o-1", "CANCELLED")
    set_status_behind_its_back(engine, "o-2", "CANCELLED")
    with engine.begin() as connection:
        assert projection.apply(connection, envelopes(paid("o-1"))) == []
    projection.committed()
    projection.discard()
    with engine.begin() as connection:
        rejections = projection.apply(connection, envelopes(paid("o-2")))
    assert [r.reason for r in rejections] == ["illegal-transition"]


def test_rows_of_a_batch_not_committed_are_forgotten(engine: Engine) -> None:
    projection = OrderStateProjection()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1")))
    projection.committed()
    projection.begin()
    with pytest.raises(RuntimeError), engine.begin() as connection:
        assert projection.apply(connection, envelopes(paid("o-1"))) == []
        raise RuntimeError("the transaction fails after apply")
    # committed() was not called: the next batch starts from the database (unpaid)
    projection.begin()
    with engine.begin() as connection:
        assert projection.apply(connection, envelopes(created("o-2"))) == []
    projection.committed()  # a batch without o-1 commits: o-1's rolled-back row is not kept
    with engine.begin() as connection:
        assert projection.apply(connection, envelopes(paid("o-1"))) == []
    projection.committed()
    with engine.connect() as connection:
        query = select(orders.c.status, orders.c.events_applied).where(orders.c.order_id == "o-1")
        row = connection.execute(query).one()
    assert tuple(row) == ("PAID", 2)


def test_every_applied_piece_of_a_batch_is_remembered_not_a_refused_one(engine: Engine) -> None:
    """The runtime applies a batch in pieces, each in a savepoint, when the database
    has refused events lately: the rows of each piece that was applied are remembered
    once the batch commits; those of a piece rolled back are not."""
    install_refusal_trigger(engine, "orders")
    projection = OrderStateProjection()
    projection.begin()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1")))
        refused = replace(created("o-2"), customer_id=REFUSED_CUSTOMER)
        with pytest.raises(IntegrityError), connection.begin_nested():
            projection.apply(connection, envelopes(paid("o-1"), refused))
        projection.apply(connection, envelopes(created("o-3")))
    projection.committed()
    set_status_behind_its_back(engine, "o-1", "CANCELLED")
    set_status_behind_its_back(engine, "o-3", "CANCELLED")
    with engine.begin() as connection:
        rejections = projection.apply(connection, envelopes(paid("o-1"), paid("o-3")))
    assert rejections == []  # both remembered as committed (PENDING_PAYMENT), not reloaded
    with engine.connect() as connection:
        assert connection.execute(select(orders.c.order_id)).scalars().all() == ["o-1", "o-3"]


def test_finished_orders_are_not_remembered(engine: Engine) -> None:
    projection = OrderStateProjection()
    batch = envelopes(created("o-1"), OrderCancelled(order_id="o-1", reason="r"), created("o-2"))
    with engine.begin() as connection:
        projection.apply(connection, batch)
    projection.committed()
    set_status_behind_its_back(engine, "o-1", "PENDING_PAYMENT")
    set_status_behind_its_back(engine, "o-2", "CANCELLED")
    with engine.begin() as connection:
        rejections = projection.apply(connection, envelopes(paid("o-1"), paid("o-2")))
    assert rejections == []  # o-1 read from the database, o-2 remembered


def test_committed_rows_keep_the_most_recently_used() -> None:
    rows: CommittedRows[int] = CommittedRows(capacity=3)
    rows.keep([("a", 1), ("b", 2), ("c", 3)])
    assert rows.take(["a", "x"]) == {"a": 1}
    assert len(rows) == 2
    rows.keep([("a", 10), ("d", 4)])  # over capacity: b, the least recently used, goes
    assert rows.take(["a", "b", "c", "d"]) == {"a": 10, "c": 3, "d": 4}
    rows.keep([("e", 5)])
    rows.clear()
    assert len(rows) == 0


def test_a_refused_piece_gives_back_the_rows_it_took(engine: Engine) -> None:
    """The piece is rolled back to its savepoint, so the rows it took are still as
    committed: they go back to the remembered rows, not to be loaded again."""
    install_refusal_trigger(engine, "orders")
    projection = OrderStateProjection()
    projection.begin()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1")))
    projection.committed()
    set_status_behind_its_back(engine, "o-1", "CANCELLED")  # shows where o-1 is read from
    refused = replace(created("o-2"), customer_id=REFUSED_CUSTOMER)
    projection.begin()
    with engine.begin() as connection:
        with pytest.raises(IntegrityError), connection.begin_nested():
            projection.apply(connection, envelopes(paid("o-1"), refused))
        assert projection.apply(connection, envelopes(paid("o-1"))) == []  # remembered
    projection.committed()


def test_a_later_piece_of_a_batch_starts_from_the_rows_an_earlier_one_left(
    engine: Engine,
) -> None:
    projection = OrderStateProjection()
    projection.begin()
    with engine.begin() as connection:
        projection.apply(connection, envelopes(created("o-1")))
        # behind its back, in the same transaction: shows where o-1 is read from
        connection.execute(
            update(orders).where(orders.c.order_id == "o-1").values(status="CANCELLED")
        )
        assert projection.apply(connection, envelopes(paid("o-1"))) == []  # not reloaded
        assert projection.apply(connection, envelopes(paid("o-1"))) != []  # already paid
    projection.committed()
