"""SalesProjection.apply against a real database (SQLite, and PostgreSQL when there is one)."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine

from consumers.projections.base import Envelope, Projection, Rejection
from consumers.projections.order_state import OrderStateProjection
from consumers.projections.sales_projection import SalesProjection
from shopstream.events import (
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)
from tests.support.reference import (
    dump_group,
    expected_order_state,
    expected_sales,
    table_differences,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_ticks = count(1)


def moment() -> datetime:
    return T0 + timedelta(seconds=next(_ticks))


def created(
    order_id: str,
    lines: Sequence[tuple[str, int, str]] = (("A", 2, "10.00"), ("B", 1, "5.00")),
    customer: str = "cust-1",
    currency: str = "EUR",
    at: datetime | None = None,
) -> OrderCreated:
    order_lines = tuple(OrderLine(sku, qty, Decimal(price)) for sku, qty, price in lines)
    return OrderCreated(
        order_id=order_id,
        customer_id=customer,
        lines=order_lines,
        total=sum((line.amount for line in order_lines), Decimal(0)),
        currency=currency,
        occurred_at=at or moment(),
    )


def paid(order_id: str, amount: str = "25.00", currency: str = "EUR") -> OrderPaid:
    return OrderPaid(
        order_id=order_id,
        payment_id="pay",
        amount=Decimal(amount),
        currency=currency,
        occurred_at=moment(),
    )


def confirmed(order_id: str) -> OrderConfirmed:
    return OrderConfirmed(order_id=order_id, occurred_at=moment())


def shipped(order_id: str) -> OrderShipped:
    return OrderShipped(order_id=order_id, carrier="DHL", tracking_number="T", occurred_at=moment())


def cancelled(order_id: str) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, reason="customer-request", occurred_at=moment())


def apply(engine: Engine, *events: DomainEvent, projection: Projection | None = None) -> list[str]:
    batch = [Envelope(event, "order-events", 0, offset) for offset, event in enumerate(events)]
    with engine.begin() as connection:
        rejections: list[Rejection] = (projection or SalesProjection()).apply(connection, batch)
    return [rejection.reason for rejection in rejections]


def products(engine: Engine) -> dict[str, dict[str, Any]]:
    return {row["sku"]: row for row in dump_group(engine, "sales-projection")["product_sales"]}


def customer(engine: Engine, customer_id: str = "cust-1") -> dict[str, Any]:
    rows = dump_group(engine, "sales-projection")["customer_stats"]
    return next(row for row in rows if row["customer_id"] == customer_id)


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["units_sold"],
        row["revenue"],
        row["orders"],
        row["units_cancelled"],
        row["revenue_cancelled"],
    )


def test_creating_an_order_sells_nothing(engine: Engine) -> None:
    assert apply(engine, created("o-1")) == []
    assert products(engine) == {}
    stats = customer(engine)
    assert (stats["orders_placed"], stats["orders_paid"], stats["total_spent"]) == (
        1,
        0,
        Decimal("0.00"),
    )


def test_payment_is_the_sale(engine: Engine) -> None:
    assert apply(engine, created("o-1"), paid("o-1")) == []
    sold = products(engine)
    assert figures(sold["A"]) == (2, Decimal("20.00"), 1, 0, Decimal("0.00"))
    assert figures(sold["B"]) == (1, Decimal("5.00"), 1, 0, Decimal("0.00"))
    stats = customer(engine)
    assert (stats["orders_paid"], stats["total_spent"]) == (1, Decimal("25.00"))


def test_confirm_and_ship_change_no_figure(engine: Engine) -> None:
    assert apply(engine, created("o-1"), paid("o-1")) == []
    before = {
        k: v for k, v in dump_group(engine, "sales-projection").items() if k != "sales_orders"
    }
    assert apply(engine, confirmed("o-1"), shipped("o-1")) == []
    after = dump_group(engine, "sales-projection")
    assert {k: v for k, v in after.items() if k != "sales_orders"} == before
    assert after["sales_orders"][0]["status"] == "SHIPPED"


@pytest.mark.parametrize("after", [[], ["confirmed"]])
def test_cancellation_after_payment_refunds_exactly_what_was_sold(
    engine: Engine, after: list[str]
) -> None:
    assert apply(engine, created("o-1"), paid("o-1"), created("o-2"), paid("o-2")) == []
    if after:
        assert apply(engine, confirmed("o-1")) == []
    assert apply(engine, cancelled("o-1")) == []
    sold = products(engine)
    assert figures(sold["A"]) == (2, Decimal("20.00"), 1, 2, Decimal("20.00"))
    assert figures(sold["B"]) == (1, Decimal("5.00"), 1, 1, Decimal("5.00"))
    stats = customer(engine)
    assert (stats["orders_placed"], stats["orders_paid"], stats["orders_cancelled"]) == (2, 2, 1)
    assert stats["total_spent"] == Decimal("25.00")


def test_cancellation_before_payment_changes_no_sale(engine: Engine) -> None:
    assert apply(engine, created("o-1"), paid("o-1"), created("o-2")) == []
    before = products(engine)
    assert apply(engine, cancelled("o-2")) == []
    assert products(engine) == before
    stats = customer(engine)
    assert (stats["orders_cancelled"], stats["total_spent"]) == (1, Decimal("25.00"))


def test_everything_cancelled_nets_to_zero(engine: Engine) -> None:
    assert apply(engine, created("o-1"), paid("o-1"), cancelled("o-1")) == []
    assert figures(products(engine)["A"]) == (0, Decimal("0.00"), 0, 2, Decimal("20.00"))
    assert customer(engine)["total_spent"] == Decimal("0.00")


def test_a_sku_on_two_lines_counts_one_order(engine: Engine) -> None:
    lines = (("A", 1, "3.00"), ("A", 2, "3.00"))
    assert apply(engine, created("o-1", lines), paid("o-1", "9.00")) == []
    assert figures(products(engine)["A"]) == (3, Decimal("9.00"), 1, 0, Decimal("0.00"))
    assert apply(engine, cancelled("o-1")) == []
    assert figures(products(engine)["A"]) == (0, Decimal("0.00"), 0, 3, Decimal("9.00"))


def test_rows_are_per_currency(engine: Engine) -> None:
    usd = created("o-2", (("A", 1, "7.00"),), currency="USD")
    assert apply(engine, created("o-1"), paid("o-1"), usd, paid("o-2", "7.00", "USD")) == []
    rows = dump_group(engine, "sales-projection")
    keys = [(row["sku"], row["currency"]) for row in rows["product_sales"]]
    assert keys == [("A", "EUR"), ("A", "USD"), ("B", "EUR")]
    spent = {row["currency"]: row["total_spent"] for row in rows["customer_stats"]}
    assert spent == {"EUR": Decimal("25.00"), "USD": Decimal("7.00")}


def test_first_and_last_order_times_across_batches(engine: Engine) -> None:
    middle, early, late = T0 + timedelta(days=2), T0 + timedelta(days=1), T0 + timedelta(days=3)
    assert apply(engine, created("o-1", at=middle)) == []
    assert apply(engine, created("o-2", at=early)) == []
    assert apply(engine, created("o-3", at=late), created("o-4", at=middle)) == []
    stats = customer(engine)
    assert (stats["first_order_at"], stats["last_order_at"]) == (early, late)
    assert stats["orders_placed"] == 4


@pytest.mark.parametrize(
    ("setup", "bad", "reason"),
    [
        ([], paid("o-x"), "unknown-order"),
        ([], cancelled("o-x"), "unknown-order"),
        ([created("o-1")], created("o-1"), "duplicate-order"),
        ([created("o-1")], shipped("o-1"), "illegal-transition"),
        ([created("o-1")], paid("o-1", "24.99"), "payment-mismatch"),
        ([created("o-1")], paid("o-1", "25.00", "USD"), "payment-mismatch"),
        ([created("o-1"), cancelled("o-1")], paid("o-1"), "illegal-transition"),
        ([created("o-1"), paid("o-1")], paid("o-1"), "illegal-transition"),
        (
            [created("o-1"), paid("o-1"), confirmed("o-1"), shipped("o-1")],
            cancelled("o-1"),
            "illegal-transition",
        ),
    ],
)
def test_refused_events_change_nothing_and_match_order_state(
    engine: Engine, setup: list[DomainEvent], bad: DomainEvent, reason: str
) -> None:
    assert apply(engine, *setup) == []
    before = dump_group(engine, "sales-projection")
    assert apply(engine, bad) == [reason]
    assert dump_group(engine, "sales-projection") == before
    assert apply(engine, *setup, bad, projection=OrderStateProjection()) == [reason]


def random_order_events(rng: random.Random, count: int) -> list[DomainEvent]:
    """Valid and invalid order events over a few orders, customers, skus and currencies."""
    events: list[DomainEvent] = []
    totals: dict[str, tuple[str, str]] = {}
    for _ in range(count):
        order = f"o-{rng.randint(1, 25)}"
        roll = rng.random()
        if roll < 0.3 or order not in totals:
            lines = [
                (rng.choice("ABCD"), rng.randint(1, 3), rng.choice(["1.00", "4.50"]))
                for _ in range(rng.randint(1, 3))
            ]
            currency = rng.choice(["EUR"] * 4 + ["USD"])
            event = created(
                order,
                lines,
                f"cust-{rng.randint(1, 4)}",
                currency,
                T0 + timedelta(minutes=rng.randint(0, 10_000)),
            )
            totals.setdefault(order, (str(event.total), currency))
            events.append(event)
        elif roll < 0.6:
            amount, currency = totals[order]
            events.append(paid(order, amount if rng.random() < 0.9 else "0.01", currency))
        elif roll < 0.7:
            events.append(confirmed(order))
        elif roll < 0.8:
            events.append(shipped(order))
        else:
            events.append(cancelled(order))
    return events


@pytest.mark.parametrize("seed", range(4))
def test_random_streams_in_random_batches_match_the_reference(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    events = random_order_events(rng, 400)
    refused: list[str] = []
    order_state: list[str] = []
    start = 0
    while start < len(events):
        size = rng.randint(1, 40)
        chunk = events[start : start + size]
        refused += apply(engine, *chunk)
        order_state += apply(engine, *chunk, projection=OrderStateProjection())
        start += size
    expected = expected_sales(events)
    assert table_differences(dump_group(engine, "sales-projection"), expected.tables) == []
    assert refused == list(expected.reasons.values())
    assert order_state == refused
    # the reference model of order-state (used by the end-to-end suites) agrees too
    reference = expected_order_state(events)
    assert table_differences(dump_group(engine, "order-state"), reference.tables) == []


def test_concurrent_members_lose_no_update_and_do_not_deadlock(
    engine: Engine, database_url: str
) -> None:
    """Two members of the group on different partitions share product and customer rows."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers; the race needs PostgreSQL")
    rng = random.Random(42)
    streams: list[list[DomainEvent]] = [[], []]
    for number in range(300):
        order = f"race-{number}"
        lines = [(rng.choice("ABCDEFGH"), rng.randint(1, 3), "2.00") for _ in range(3)]
        event = created(order, lines, customer=f"cust-{rng.randint(1, 5)}")
        steps: list[DomainEvent] = [event, paid(order, str(event.total))]
        if rng.random() < 0.3:
            steps.append(cancelled(order))
        streams[number % 2] += steps

    def member(events: list[DomainEvent]) -> None:
        for start in range(0, len(events), 25):
            apply(engine, *events[start : start + 25])

    threads = [threading.Thread(target=member, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    expected = expected_sales(streams[0] + streams[1])
    assert table_differences(dump_group(engine, "sales-projection"), expected.tables) == []
