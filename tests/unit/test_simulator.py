"""The shopper simulator: deterministic, realistic, and true to the order state machine.

An independent oracle (:class:`Shop`) replays the generated stream with the rules
consumers enforce, so every valid event must be accepted and every injected invalid
event rejected.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import islice
from typing import Any

import pytest

from shopstream.errors import UsageError
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
)
from shopstream.jsonl import dumps_event
from shopstream.simulation.simulator import (
    Behaviour,
    InvalidKind,
    ProductCatalog,
    SimulationConfig,
    Simulator,
    invalid_kind,
)

PENDING, PAID, CONFIRMED, SHIPPED, CANCELLED = (
    "PENDING_PAYMENT",
    "PAID",
    "CONFIRMED",
    "SHIPPED",
    "CANCELLED",
)
NEXT_STATUS: dict[type, tuple[frozenset[str], str]] = {
    OrderPaid: (frozenset({PENDING}), PAID),
    OrderConfirmed: (frozenset({PAID}), CONFIRMED),
    OrderShipped: (frozenset({CONFIRMED}), SHIPPED),
    OrderCancelled: (frozenset({PENDING, PAID, CONFIRMED}), CANCELLED),
}


@dataclass
class CartState:
    customer_id: str
    items: dict[str, int] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)
    order_id: str | None = None


@dataclass
class OrderState:
    status: str
    total: Decimal
    history: list[str] = field(default_factory=list)


@dataclass
class Shop:
    """The rules, applied event by event: ``apply`` returns why an event is refused."""

    carts: dict[str, CartState] = field(default_factory=dict)
    orders: dict[str, OrderState] = field(default_factory=dict)
    checked_out: dict[str, CartState] = field(default_factory=dict)
    """order_id → the cart it came from, as it was at checkout."""

    def apply(self, event: DomainEvent) -> str | None:
        if isinstance(event, CartItemAdded | CartItemRemoved | CartCheckedOut):
            return self._cart(event)
        return self._order(event)

    def _cart(self, event: CartItemAdded | CartItemRemoved | CartCheckedOut) -> str | None:
        cart = self.carts.setdefault(event.cart_id, CartState(event.customer_id))
        if cart.order_id is not None:
            return "cart already checked out"
        if isinstance(event, CartItemAdded):
            cart.items[event.sku] = cart.items.get(event.sku, 0) + event.quantity
            cart.prices[event.sku] = event.unit_price
        elif isinstance(event, CartItemRemoved):
            held = cart.items.get(event.sku, 0)
            if event.quantity > held:
                return f"removing {event.quantity} of {held}"
            cart.items[event.sku] = held - event.quantity
            if not cart.items[event.sku]:
                del cart.items[event.sku]
        else:
            if not cart.items:
                return "empty cart checked out"
            cart.order_id = event.order_id
            self.checked_out[event.order_id] = cart
        return None

    def _order(self, event: DomainEvent) -> str | None:
        if isinstance(event, OrderCreated):
            if event.order_id in self.orders:
                return "order created twice"
            self.orders[event.order_id] = OrderState(PENDING, event.total, [PENDING])
            return None
        order = self.orders.get(getattr(event, "order_id", ""))
        if order is None:
            return "unknown order"
        allowed, target = NEXT_STATUS[type(event)]
        if order.status not in allowed:
            return f"{type(event).__name__} in {order.status}"
        if isinstance(event, OrderPaid) and event.amount != order.total:
            return "amount is not the total"
        order.status = target
        order.history.append(target)
        return None


def run(**overrides: Any) -> list[DomainEvent]:
    config = replace(SimulationConfig(customers=20, orders=150, seed=11), **overrides)
    return list(Simulator(config).events())


@pytest.fixture(scope="module")
def valid_run() -> list[DomainEvent]:
    return run(orders=400)


@pytest.fixture(scope="module")
def invalid_run() -> list[DomainEvent]:
    return run(orders=400, invalid_rate=0.1)


def test_same_seed_gives_byte_identical_json() -> None:
    first = [dumps_event(event) for event in run(invalid_rate=0.05)]
    second = [dumps_event(event) for event in run(invalid_rate=0.05)]
    assert first == second
    assert [dumps_event(event) for event in run(seed=12)] != first


def test_events_is_repeatable_on_one_simulator() -> None:
    simulator = Simulator(SimulationConfig(customers=5, orders=10, seed=3))
    assert list(simulator.events()) == list(simulator.events())


def test_ids_are_unique_uuids(valid_run: list[DomainEvent]) -> None:
    ids = [event.event_id for event in valid_run]
    assert len(set(ids)) == len(ids)
    created = [event.order_id for event in valid_run if isinstance(event, OrderCreated)]
    assert len(set(created)) == len(created)


def test_every_life_cycle_follows_the_state_machine(valid_run: list[DomainEvent]) -> None:
    shop = Shop()
    refused = [(event, reason) for event in valid_run if (reason := shop.apply(event))]
    assert refused == []
    assert shop.orders, "no orders generated"
    for order in shop.orders.values():
        assert order.status in {SHIPPED, CANCELLED}, order.history


def test_exactly_the_requested_orders(valid_run: list[DomainEvent]) -> None:
    counts = Counter(event.event_type for event in valid_run)
    assert counts["OrderCreated"] == 400
    assert counts["CartCheckedOut"] == 400


def test_orders_match_their_carts_and_payments_match_totals(
    valid_run: list[DomainEvent],
) -> None:
    shop = Shop()
    for event in valid_run:
        if isinstance(event, OrderCreated):
            cart = shop.checked_out[event.order_id]  # checkout came first
            expected = tuple(
                OrderLine(sku=sku, quantity=quantity, unit_price=cart.prices[sku])
                for sku, quantity in cart.items.items()
            )
            assert event.lines == expected
            assert event.total == sum((line.amount for line in expected), Decimal(0))
            assert event.customer_id == cart.customer_id
            assert event.cart_id is not None and shop.carts[event.cart_id] is cart
        if isinstance(event, OrderPaid):
            assert event.amount == shop.orders[event.order_id].total
        assert shop.apply(event) is None


def test_time_runs_forward_globally_and_per_aggregate(valid_run: list[DomainEvent]) -> None:
    times = [event.occurred_at for event in valid_run]
    assert times == sorted(times)
    assert times[0] >= SimulationConfig().start


def test_customers_interleave(valid_run: list[DomainEvent]) -> None:
    keys = [event.key for event in valid_run]
    positions: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        positions[key].append(index)
    interleaved = [p for p in positions.values() if p[-1] - p[0] + 1 > len(p)]
    assert len(interleaved) > len(positions) / 2
    assert len({event.customer_id for event in valid_run if isinstance(event, CartItemAdded)}) == 20


def test_realistic_mix_of_outcomes(valid_run: list[DomainEvent]) -> None:
    shop = Shop()
    for event in valid_run:
        shop.apply(event)
    abandoned = [cart for cart in shop.carts.values() if cart.order_id is None]
    histories = Counter(tuple(order.history) for order in shop.orders.values())
    counts = Counter(event.event_type for event in valid_run)
    assert len(abandoned) > 40  # ~30% of carts
    assert counts["CartItemRemoved"] > 0
    assert histories[(PENDING, PAID, CONFIRMED, SHIPPED)] > 300
    assert histories[(PENDING, CANCELLED)] > 0
    assert (
        histories[(PENDING, PAID, CANCELLED)] + histories[(PENDING, PAID, CONFIRMED, CANCELLED)] > 0
    )


def test_popularity_is_skewed(valid_run: list[DomainEvent]) -> None:
    catalog = ProductCatalog.load()
    rank = {product.sku: index for index, product in enumerate(catalog.products)}
    adds = [rank[e.sku] for e in valid_run if isinstance(e, CartItemAdded)]
    top_tenth = sum(1 for r in adds if r < len(rank) // 10)
    bottom_half = sum(1 for r in adds if r >= len(rank) // 2)
    assert top_tenth / len(adds) > 0.4
    assert bottom_half / len(adds) < 0.2
    assert Counter(adds).most_common(1)[0][0] == 0


def test_prices_come_from_the_catalog(valid_run: list[DomainEvent]) -> None:
    prices = {product.sku: product.price for product in ProductCatalog.load().products}
    for event in valid_run:
        if isinstance(event, CartItemAdded):
            assert event.unit_price == prices[event.sku]
            assert event.currency == "EUR"


def test_injected_invalid_events_are_marked_and_refused(invalid_run: list[DomainEvent]) -> None:
    shop = Shop()
    kinds: Counter[InvalidKind] = Counter()
    for event in invalid_run:
        kind = invalid_kind(event)
        if kind is None:
            assert shop.apply(event) is None, event
        else:
            kinds[kind] += 1
            probe = Shop(dict(shop.carts), dict(shop.orders), dict(shop.checked_out))
            assert probe.apply(event) is not None, (kind, event)
    assert set(kinds) == set(InvalidKind)
    valid = sum(1 for event in invalid_run if invalid_kind(event) is None)
    assert 0.07 < sum(kinds.values()) / valid < 0.13


def test_each_invalid_kind_breaks_the_rule_it_names(invalid_run: list[DomainEvent]) -> None:
    expected_types = {
        InvalidKind.PAY_CANCELLED: {"OrderPaid"},
        InvalidKind.SHIP_UNPAID: {"OrderShipped"},
        InvalidKind.UNKNOWN_ORDER: {"OrderPaid", "OrderConfirmed", "OrderCancelled"},
        InvalidKind.CART_AFTER_CHECKOUT: {"CartItemAdded"},
        InvalidKind.REMOVE_TOO_MANY: {"CartItemRemoved"},
    }
    shop = Shop()
    for event in invalid_run:
        kind = invalid_kind(event)
        if kind is None:
            shop.apply(event)
            continue
        assert event.event_type in expected_types[kind]
        assert event.correlation_id == f"invalid:{kind}"
        order_id: str = getattr(event, "order_id", "")
        if kind is InvalidKind.PAY_CANCELLED:
            assert shop.orders[order_id].status == CANCELLED
        elif kind is InvalidKind.SHIP_UNPAID:
            assert shop.orders[order_id].status == PENDING
        elif kind is InvalidKind.UNKNOWN_ORDER:
            assert order_id not in shop.orders
        elif kind is InvalidKind.CART_AFTER_CHECKOUT:
            assert isinstance(event, CartItemAdded)
            assert shop.carts[event.cart_id].order_id is not None
        else:
            assert isinstance(event, CartItemRemoved)
            assert event.quantity > shop.carts[event.cart_id].items[event.sku]


def test_valid_events_do_not_depend_on_the_invalid_rate() -> None:
    clean = run(invalid_rate=0.0)
    mixed = [event for event in run(invalid_rate=0.2) if invalid_kind(event) is None]
    assert mixed == clean


def test_no_invalid_events_by_default(valid_run: list[DomainEvent]) -> None:
    assert all(invalid_kind(event) is None for event in valid_run)


def test_unbounded_run_keeps_going() -> None:
    events = Simulator(SimulationConfig(customers=30, orders=None, seed=5)).events()
    first = list(islice(events, 5000))
    assert len(first) == 5000
    shop = Shop()
    assert all(shop.apply(event) is None for event in first)


def test_one_customer_one_order() -> None:
    events = run(customers=1, orders=1)
    counts = Counter(event.event_type for event in events)
    assert counts["OrderCreated"] == 1
    assert len({event.customer_id for event in events if isinstance(event, CartItemAdded)}) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"orders": 0}, "orders"),
        ({"invalid_rate": 1.5}, "invalid rate"),
        ({"behaviour": Behaviour(abandon_probability=2.0)}, "abandon_probability"),
        ({"behaviour": Behaviour(mean_browse_s=0)}, "mean_browse_s"),
        ({"behaviour": Behaviour(remove_probability=1.0)}, "remove_probability"),
    ],
)
def test_bad_configuration_is_a_usage_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        replace(SimulationConfig(), **overrides)


def test_catalog_ships_about_200_products() -> None:
    catalog = ProductCatalog.load()
    skus = [product.sku for product in catalog.products]
    assert 150 <= len(skus) <= 250
    assert len(set(skus)) == len(skus)
    assert len({product.category for product in catalog.products}) >= 5
    for product in catalog.products:
        assert product.price > 0
        assert product.price == product.price.quantize(Decimal("0.01"))
    weights = [
        b - a for a, b in zip((0.0, *catalog.cum_weights), catalog.cum_weights, strict=False)
    ]
    assert weights == sorted(weights, reverse=True)


class FakeClock:
    """A clock that only moves when the code under test waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_pacing_spreads_events_at_the_rate_without_changing_them() -> None:
    from shopstream.cli.simulate import paced

    events = run(customers=3, orders=3)[:21]
    clock = FakeClock()
    assert list(paced(events, 10.0, clock.wait, clock)) == events
    assert clock.now == pytest.approx(102.0)  # 21 events at 10/s: the last one at 2.0 s
    assert list(paced(events, 0.0, clock.wait, clock)) == events  # 0 = unlimited
    assert clock.now == pytest.approx(102.0)


def test_pacing_waits_again_when_a_wait_returns_early() -> None:
    from shopstream.cli.simulate import paced

    clock = FakeClock()

    def short_wait(seconds: float) -> None:  # like producer.poll serving a report
        clock.wait(min(seconds, 0.01))

    events = run(customers=2, orders=1)[:3]
    assert list(paced(events, 2.0, short_wait, clock)) == events
    assert clock.now == pytest.approx(101.0, abs=0.002)


def test_until_stops_after_the_duration() -> None:
    from shopstream.cli.simulate import until

    clock = FakeClock()

    def ticking() -> Iterator[DomainEvent]:  # each event takes 0.25 s to make
        for event in Simulator(SimulationConfig(orders=None, seed=1)).events():
            clock.wait(0.25)
            yield event

    assert len(list(until(ticking(), 1.0, clock))) == 3  # made at 0.25, 0.5, 0.75 s
    assert len(list(until(run(orders=2), None, clock))) == len(run(orders=2))
