"""CartProjection.apply against a real database (SQLite, and PostgreSQL when there is one)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from consumers.projections.base import Envelope, Rejection
from consumers.projections.cart_projection import CartProjection
from shopstream.db import read_queries
from shopstream.events import CartCheckedOut, CartItemAdded, CartItemRemoved, DomainEvent
from tests.support.reference import dump_group, expected_carts, table_differences

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self, seconds: int = 10) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def at() -> Clock:
    return Clock()


def add(
    at: Clock,
    sku: str,
    quantity: int = 1,
    price: str = "10.00",
    cart: str = "c-1",
    currency: str = "EUR",
    customer: str = "cust-1",
) -> CartItemAdded:
    return CartItemAdded(
        cart_id=cart,
        customer_id=customer,
        sku=sku,
        quantity=quantity,
        unit_price=Decimal(price),
        currency=currency,
        occurred_at=at.tick(),
    )


def remove(
    at: Clock, sku: str, quantity: int = 1, cart: str = "c-1", customer: str = "cust-1"
) -> CartItemRemoved:
    return CartItemRemoved(
        cart_id=cart, customer_id=customer, sku=sku, quantity=quantity, occurred_at=at.tick()
    )


def checkout(at: Clock, cart: str = "c-1", order: str = "o-1") -> CartCheckedOut:
    return CartCheckedOut(cart_id=cart, customer_id="cust-1", order_id=order, occurred_at=at.tick())


def apply(engine: Engine, *events: DomainEvent) -> list[Rejection]:
    batch = [Envelope(event, "cart-events", 0, offset) for offset, event in enumerate(events)]
    with engine.begin() as connection:
        return CartProjection().apply(connection, batch)


def reasons(rejections: Sequence[Rejection]) -> list[str]:
    return [rejection.reason for rejection in rejections]


def cart_row(engine: Engine, cart_id: str = "c-1") -> dict[str, object]:
    carts = dump_group(engine, "cart-projection")["carts"]
    return next(row for row in carts if row["cart_id"] == cart_id)


def items(engine: Engine, cart_id: str = "c-1") -> dict[str, tuple[int, Decimal]]:
    rows = dump_group(engine, "cart-projection")["cart_items"]
    return {r["sku"]: (r["quantity"], r["unit_price"]) for r in rows if r["cart_id"] == cart_id}


def test_adds_build_the_cart(engine: Engine, at: Clock) -> None:
    first = add(at, "A", 2, "10.00")
    last = add(at, "B", 1, "5.50")
    assert apply(engine, first, last) == []
    row = cart_row(engine)
    assert row["status"] == "ACTIVE"
    assert row["customer_id"] == "cust-1"
    assert row["item_count"] == 3
    assert row["subtotal"] == Decimal("25.50")
    assert row["currency"] == "EUR"
    assert row["created_at"] == first.occurred_at
    assert row["last_activity_at"] == last.occurred_at
    assert row["order_id"] is None
    assert items(engine) == {"A": (2, Decimal("10.00")), "B": (1, Decimal("5.50"))}


def test_adding_a_held_sku_sums_quantities_and_reprices_the_line(engine: Engine, at: Clock) -> None:
    assert apply(engine, add(at, "A", 1, "10.00")) == []
    assert apply(engine, add(at, "A", 2, "9.00")) == []
    assert items(engine) == {"A": (3, Decimal("9.00"))}
    assert cart_row(engine)["subtotal"] == Decimal("27.00")


def test_removing_to_zero_deletes_the_line(engine: Engine, at: Clock) -> None:
    assert apply(engine, add(at, "A", 3), add(at, "B", 1, "4.00")) == []
    assert apply(engine, remove(at, "A", 1)) == []
    assert items(engine)["A"] == (2, Decimal("10.00"))
    assert apply(engine, remove(at, "A", 2)) == []
    assert items(engine) == {"B": (1, Decimal("4.00"))}
    row = cart_row(engine)
    assert (row["item_count"], row["subtotal"]) == (1, Decimal("4.00"))


def test_a_line_removed_and_added_again_in_one_batch(engine: Engine, at: Clock) -> None:
    assert apply(engine, add(at, "A", 1)) == []
    assert apply(engine, remove(at, "A", 1), add(at, "A", 2, "8.00")) == []
    assert items(engine) == {"A": (2, Decimal("8.00"))}


def test_checkout_closes_the_cart(engine: Engine, at: Clock) -> None:
    done = checkout(at, order="o-9")
    assert apply(engine, add(at, "A", 2), done) == []
    row = cart_row(engine)
    assert row["status"] == "CHECKED_OUT"
    assert row["order_id"] == "o-9"
    assert row["checked_out_at"] == done.occurred_at
    assert row["item_count"] == 2


@pytest.mark.parametrize(
    ("setup", "bad", "reason"),
    [
        (["add A 2"], "remove A 3", "insufficient-quantity"),
        (["add A 2"], "remove B 1", "item-not-in-cart"),
        (["add A 2", "remove A 2"], "remove A 1", "item-not-in-cart"),
        ([], "remove A 1", "unknown-cart"),
        ([], "checkout", "unknown-cart"),
        (["add A 1", "remove A 1"], "checkout", "empty-cart"),
        (["add A 1", "checkout"], "add B 1", "cart-checked-out"),
        (["add A 1", "checkout"], "remove A 1", "cart-checked-out"),
        (["add A 1", "checkout"], "checkout", "cart-checked-out"),
        (["add A 1"], "add-usd B 1", "currency-mismatch"),
        (["add A 1"], "add-other-customer B 1", "customer-mismatch"),
    ],
)
def test_refused_events_change_nothing(
    engine: Engine, at: Clock, setup: list[str], bad: str, reason: str
) -> None:
    assert apply(engine, *(command(at, text) for text in setup)) == []
    before = dump_group(engine, "cart-projection")
    event = command(at, bad)
    rejections = apply(engine, event)
    assert reasons(rejections) == [reason]
    assert rejections[0].envelope.event is event
    assert rejections[0].detail
    assert dump_group(engine, "cart-projection") == before


def test_refusal_in_the_middle_of_a_batch(engine: Engine, at: Clock) -> None:
    rejections = apply(engine, add(at, "A", 1), remove(at, "A", 5), add(at, "A", 1))
    assert reasons(rejections) == ["insufficient-quantity"]
    assert items(engine) == {"A": (2, Decimal("10.00"))}


def test_last_activity_never_goes_back(engine: Engine, at: Clock) -> None:
    late = add(at, "A", 1)
    early = CartItemAdded(
        cart_id="c-1",
        customer_id="cust-1",
        sku="B",
        quantity=1,
        unit_price=Decimal("1.00"),
        currency="EUR",
        occurred_at=T0 - timedelta(days=1),
    )
    assert apply(engine, late, early) == []
    assert cart_row(engine)["last_activity_at"] == late.occurred_at


def command(at: Clock, text: str) -> DomainEvent:
    verb, *args = text.split()
    if verb == "checkout":
        return checkout(at)
    sku, quantity = args[0], int(args[1])
    if verb == "add":
        return add(at, sku, quantity)
    if verb == "add-usd":
        return add(at, sku, quantity, currency="USD")
    if verb == "add-other-customer":
        return add(at, sku, quantity, customer="cust-2")
    return remove(at, sku, quantity)


def random_cart_events(rng: random.Random, count: int) -> list[DomainEvent]:
    """Valid and invalid cart events over a few carts, skus and currencies."""
    at = Clock()
    events: list[DomainEvent] = []
    for _ in range(count):
        cart = f"c-{rng.randint(1, 6)}"
        sku = rng.choice("ABCD")
        roll = rng.random()
        if roll < 0.55:
            events.append(
                add(
                    at,
                    sku,
                    rng.randint(1, 3),
                    rng.choice(["1.00", "2.50", "9.99"]),
                    cart=cart,
                    currency=rng.choice(["EUR"] * 9 + ["USD"]),
                )
            )
        elif roll < 0.9:
            events.append(remove(at, sku, rng.randint(1, 3), cart=cart))
        else:
            events.append(checkout(at, cart=cart, order=f"o-{len(events)}"))
    return events


@pytest.mark.parametrize("seed", range(4))
def test_random_streams_in_random_batches_match_the_reference(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    events = random_cart_events(rng, 300)
    refused: dict[str, str] = {}
    start = 0
    while start < len(events):
        size = rng.randint(1, 40)
        for rejection in apply(engine, *events[start : start + size]):
            refused[rejection.envelope.event.event_id] = rejection.reason
        start += size
    expected = expected_carts(events)
    assert table_differences(dump_group(engine, "cart-projection"), expected.tables) == []
    assert refused == expected.reasons


def test_abandoned_carts_are_answered_at_a_moment(engine: Engine, at: Clock) -> None:
    assert apply(engine, add(at, "A", 1, cart="idle"), add(at, "A", 1, cart="sold")) == []
    assert apply(engine, checkout(at, cart="sold")) == []
    at.tick(2 * 3600)
    assert apply(engine, add(at, "B", 2, cart="busy")) == []

    with engine.connect() as connection:
        latest = read_queries.latest_cart_activity(connection)
        assert latest == at.now

        def states(threshold: timedelta, moment: datetime) -> dict[str, str]:
            rows = read_queries.list_carts(
                connection, as_of=moment, abandoned_after=threshold, limit=10
            )
            return {row.cart_id: row.state.value for row in rows}

        assert states(timedelta(minutes=30), latest) == {
            "idle": "ABANDONED",
            "sold": "CHECKED_OUT",
            "busy": "ACTIVE",
        }
        assert states(timedelta(hours=3), latest)["idle"] == "ACTIVE"
        assert states(timedelta(minutes=30), latest + timedelta(hours=1))["busy"] == "ABANDONED"
        only = read_queries.list_carts(
            connection,
            state=read_queries.CartState.ABANDONED,
            as_of=latest,
            abandoned_after=timedelta(minutes=30),
        )
        assert [row.cart_id for row in only] == ["idle"]
        counts = read_queries.count_carts(
            connection, as_of=latest, abandoned_after=timedelta(minutes=30)
        )
        assert (counts.active, counts.abandoned, counts.checked_out) == (1, 1, 1)
        assert counts.abandoned_value == (("EUR", Decimal("10.00")),)
