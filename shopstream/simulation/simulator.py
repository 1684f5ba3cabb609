"""Realistic shoppers, as a deterministic stream of typed events (no Kafka here).

Customers visit the shop, fill a cart from the product catalog (``catalog.json``,
popularity skewed: the product of rank ``r`` is picked with weight ``1 / r**s``,
Zipf), sometimes take items out again, and then abandon the cart or check out. A
checkout (``CartCheckedOut`` with the new ``order_id``) leads to ``OrderCreated`` whose
lines and total are the cart's content, then payment (``amount`` = total),
confirmation and shipping, with cancellations before and after payment. Every order
follows the state machine::

    PENDING_PAYMENT --OrderPaid--> PAID --OrderConfirmed--> CONFIRMED --OrderShipped--> SHIPPED
    PENDING_PAYMENT | PAID | CONFIRMED --OrderCancelled--> CANCELLED

It is a discrete-event simulation: every next step of every cart and order is
scheduled at a simulated time, and steps run in time order, so the events of
different customers interleave while each cart's and each order's events stay in
order. ``occurred_at`` is the simulated time, starting at a fixed epoch.

Determinism: everything random (ids included: uuids are drawn from the seeded
generator) comes from ``random.Random(seed)``, so the same configuration gives the
same events, byte for byte in JSON. Injected invalid events draw from a second
generator, so the valid events do not depend on ``invalid_rate``.

Invalid events (``invalid_rate`` > 0): after each valid event, with that
probability, one extra event that breaks the rules: paying a cancelled order,
shipping an unpaid one, an event for an unknown order, adding to a checked-out
cart, removing more than the cart holds. Each is marked with
``correlation_id = "invalid:<kind>"`` (see :func:`invalid_kind`).
"""

from __future__ import annotations

import heapq
import json
import random
from bisect import bisect
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache, partial
from itertools import accumulate, count
from pathlib import Path
from typing import TypeVar

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
    time_ordered_uuid,
    uuid_text,
)

CATALOG_PATH = Path(__file__).with_name("catalog.json")
DEFAULT_START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_ZIPF_EXPONENT = 1.1
INVALID_PREFIX = "invalid:"
RECENT_TARGETS = 256
"""How many cancelled orders and checked-out carts are kept as invalid-event targets."""

CARRIERS = ("DHL", "UPS", "DPD", "GLS", "Hermes")
UNPAID_CANCEL_REASONS = ("payment-timeout", "customer-request", "payment-declined")
PAID_CANCEL_REASONS = ("customer-request", "fraud-check-failed")
CONFIRMED_CANCEL_REASONS = ("out-of-stock", "customer-request")
QUANTITIES = (1, 2, 3)
QUANTITY_WEIGHTS = (80, 15, 5)
_QUANTITY_CUM_WEIGHTS = tuple(accumulate(QUANTITY_WEIGHTS))
_T = TypeVar("_T")


class InvalidKind(StrEnum):
    """Ways an injected event breaks the rules (the text after ``invalid:``)."""

    PAY_CANCELLED = "pay-cancelled"
    SHIP_UNPAID = "ship-unpaid"
    UNKNOWN_ORDER = "unknown-order"
    CART_AFTER_CHECKOUT = "cart-after-checkout"
    REMOVE_TOO_MANY = "remove-too-many"


def invalid_kind(event: DomainEvent) -> InvalidKind | None:
    """The kind of an injected invalid event, None for a valid one."""
    correlation = event.correlation_id or ""
    if not correlation.startswith(INVALID_PREFIX):
        return None
    return InvalidKind(correlation.removeprefix(INVALID_PREFIX))


# -- catalog -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    category: str
    price: Decimal


@dataclass(frozen=True)
class ProductCatalog:
    """Products from most to least popular, with their Zipf weights."""

    products: tuple[Product, ...]
    currency: str
    cum_weights: tuple[float, ...]

    @classmethod
    def from_products(
        cls, products: Sequence[Product], currency: str, zipf_exponent: float
    ) -> ProductCatalog:
        if not products:
            raise UsageError("the product catalog is empty")
        weights = (1.0 / rank**zipf_exponent for rank in range(1, len(products) + 1))
        return cls(tuple(products), currency, tuple(accumulate(weights)))

    @classmethod
    def load(
        cls, path: Path = CATALOG_PATH, zipf_exponent: float = DEFAULT_ZIPF_EXPONENT
    ) -> ProductCatalog:
        """Read a catalog file (the one shipped with the project by default)."""
        return _load_catalog(path, zipf_exponent)

    def pick(self, rng: random.Random) -> Product:
        """A product, popular ones more often."""
        return _weighted(self.products, self.cum_weights, rng)


def _weighted(population: Sequence[_T], cum_weights: Sequence[float], rng: random.Random) -> _T:
    """``rng.choices(population, cum_weights=cum_weights)[0]``: the same draw from the
    same generator state, without building the list."""
    total = cum_weights[-1] + 0.0
    return population[bisect(cum_weights, rng.random() * total, 0, len(population) - 1)]


@cache
def _load_catalog(path: Path, zipf_exponent: float) -> ProductCatalog:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        products = [
            Product(item["sku"], item["name"], item["category"], Decimal(item["price"]))
            for item in raw["products"]
        ]
        currency = str(raw["currency"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read product catalog {path}: {exc}") from None
    return ProductCatalog.from_products(products, currency, zipf_exponent)


# -- configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How shoppers and the shop behave: probabilities and mean delays (seconds)."""

    mean_think_s: float = 300.0
    """Between two visits of one customer."""
    mean_browse_s: float = 20.0
    """Between two actions on a cart."""
    mean_adds: float = 3.0
    """Items put in a cart (at least one; geometric)."""
    remove_probability: float = 0.12
    """That a cart action takes something out instead of adding."""
    abandon_probability: float = 0.3
    mean_order_delay_s: float = 0.5
    """From checkout to OrderCreated."""
    mean_payment_s: float = 60.0
    mean_confirm_s: float = 180.0
    mean_ship_s: float = 1200.0
    cancel_unpaid_probability: float = 0.08
    cancel_paid_probability: float = 0.04
    cancel_confirmed_probability: float = 0.02

    def check(self) -> None:
        """Raise UsageError for a probability outside [0, 1] or a mean <= 0."""
        for name, value in vars(self).items():
            if name.endswith("_probability") and not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be between 0 and 1, got {value}")
            if name.startswith("mean_") and not value > 0:
                raise UsageError(f"{name} must be positive, got {value}")
        if self.remove_probability >= 1.0:
            raise UsageError("remove_probability must be below 1 (carts would never fill)")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``orders=None`` runs forever (stop by time or count)."""

    customers: int = 50
    orders: int | None = 100
    """Stop after this many checkouts, once every started order life cycle is over."""
    seed: int = 0
    invalid_rate: float = 0.0
    """Expected injected invalid events per valid event (0 to 1)."""
    start: datetime = DEFAULT_START
    """Simulated time of the first moment (occurred_at of the earliest event)."""
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise UsageError(f"customers must be at least 1, got {self.customers}")
        if self.orders is not None and self.orders < 1:
            raise UsageError(f"orders must be at least 1, got {self.orders}")
        if not 0.0 <= self.invalid_rate <= 1.0:
            raise UsageError(f"invalid rate must be between 0 and 1, got {self.invalid_rate}")
        if self.start.tzinfo is None:
            raise UsageError("start must be a timezone-aware time")
        self.behaviour.check()


class Simulator:
    """``Simulator(config).events()``: the event stream of ``config``, repeatable."""

    def __init__(self, config: SimulationConfig, catalog: ProductCatalog | None = None) -> None:
        self._config = config
        self._catalog = catalog or ProductCatalog.load()

    @property
    def config(self) -> SimulationConfig:
        return self._config

    def events(self) -> Iterator[DomainEvent]:
        """A fresh run from the start: the same events every time for one config."""
        return _Shop(self._config, self._catalog).run()


# -- the simulation ------------------------------------------------------------------


@dataclass(slots=True)
class _Cart:
    cart_id: str
    customer_id: str
    adds_left: int
    abandon: bool
    items: dict[str, int] = field(default_factory=dict)
    """sku → quantity held, in the order first added."""
    prices: dict[str, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class _Order:
    order_id: str
    cart_id: str
    total: Decimal


Action = Callable[[], list[DomainEvent]]


_UUID4_CLEARED = ~(0xC000 << 48 | 0xF000 << 64)
_UUID4_SET = 0x8000 << 48 | 4 << 76
"""The variant and version bits ``uuid.UUID(int=..., version=4)`` clears and sets."""


def _new_uuid(rng: random.Random) -> str:
    """``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, without the UUID object."""
    return uuid_text(rng.getrandbits(128) & _UUID4_CLEARED | _UUID4_SET)


class _Shop:
    """One run: the clock, the schedule, and every open cart and order."""

    def __init__(self, config: SimulationConfig, catalog: ProductCatalog) -> None:
        self._config = config
        self._behaviour = config.behaviour
        self._catalog = catalog
        self._rng = random.Random(config.seed)
        self._invalid_rng = random.Random(f"{config.seed}/invalid")
        self._clock_ms = 0
        self._start_ms = (config.start - _EPOCH) // timedelta(milliseconds=1)
        """Unix milliseconds of the simulated clock's zero."""
        self._queue: list[tuple[int, int, Action]] = []
        self._sequence = count()
        self._orders_started = 0
        self._open_carts: dict[str, _Cart] = {}
        self._waiting: deque[str] = deque()
        self._pending: dict[str, _Order] = {}
        self._cancelled: deque[_Order] = deque(maxlen=RECENT_TARGETS)
        self._checked_out: deque[_Cart] = deque(maxlen=RECENT_TARGETS)

    def run(self) -> Iterator[DomainEvent]:
        for index in range(self._config.customers):
            self._schedule_visit(f"customer-{index + 1:05d}")
        queue, invalid_rate = self._queue, self._config.invalid_rate
        while queue:
            self._clock_ms, _, action = heapq.heappop(queue)
            for event in action():
                yield event
                if invalid_rate and self._invalid_rng.random() < invalid_rate:
                    yield self._invalid_event()

    # -- time and randomness ---------------------------------------------------

    def _schedule(self, mean_s: float, action: Action) -> None:
        delay_ms = max(1, round(self._rng.expovariate(1.0 / mean_s) * 1000))
        heapq.heappush(self._queue, (self._clock_ms + delay_ms, next(self._sequence), action))

    def _now(self) -> datetime:
        return self._config.start + timedelta(milliseconds=self._clock_ms)

    def _uuid(self) -> str:
        return _new_uuid(self._rng)

    def _event_id(self) -> str:
        """A UUIDv7 at the simulated clock (time-ordered, like :func:`new_event_id`),
        its random part drawn from the seeded generator."""
        return time_ordered_uuid(self._start_ms + self._clock_ms, self._rng.getrandbits(128))

    # -- customers and carts --------------------------------------------------------

    def _schedule_visit(self, customer_id: str) -> None:
        self._schedule(self._behaviour.mean_think_s, partial(self._visit, customer_id))

    def _may_open_cart(self) -> bool:
        limit = self._config.orders
        return limit is None or self._orders_started + len(self._open_carts) < limit

    def _visit(self, customer_id: str) -> list[DomainEvent]:
        if not self._may_open_cart():
            self._waiting.append(customer_id)
            return []
        adds = 1 + self._geometric(self._behaviour.mean_adds - 1)
        abandon = self._rng.random() < self._behaviour.abandon_probability
        cart = _Cart(self._uuid(), customer_id, adds, abandon)
        self._open_carts[cart.cart_id] = cart
        return self._cart_step(cart)

    def _geometric(self, mean: float) -> int:
        """A count >= 0 with the given mean (geometric distribution)."""
        if mean <= 0:
            return 0
        stop = 1.0 / (1.0 + mean)
        extra = 0
        while self._rng.random() >= stop:
            extra += 1
        return extra

    def _cart_step(self, cart: _Cart) -> list[DomainEvent]:
        if cart.adds_left <= 0:
            return self._finish_cart(cart)
        if cart.items and self._rng.random() < self._behaviour.remove_probability:
            event: DomainEvent = self._remove_item(cart)
        else:
            event = self._add_item(cart)
            cart.adds_left -= 1
        self._schedule(self._behaviour.mean_browse_s, partial(self._cart_step, cart))
        return [event]

    def _add_item(self, cart: _Cart) -> CartItemAdded:
        product = self._catalog.pick(self._rng)
        quantity = _weighted(QUANTITIES, _QUANTITY_CUM_WEIGHTS, self._rng)
        cart.items[product.sku] = cart.items.get(product.sku, 0) + quantity
        cart.prices[product.sku] = product.price
        return CartItemAdded(
            event_id=self._event_id(),
            occurred_at=self._now(),
            correlation_id=cart.cart_id,
            cart_id=cart.cart_id,
            customer_id=cart.customer_id,
            sku=product.sku,
            quantity=quantity,
            unit_price=product.price,
            currency=self._catalog.currency,
        )

    def _remove_item(self, cart: _Cart) -> CartItemRemoved:
        sku = self._rng.choice(list(cart.items))
        held = cart.items[sku]
        quantity = self._rng.randint(1, held)
        if quantity == held:
            del cart.items[sku]
            del cart.prices[sku]
        else:
            cart.items[sku] = held - quantity
        return CartItemRemoved(
            event_id=self._event_id(),
            occurred_at=self._now(),
            correlation_id=cart.cart_id,
            cart_id=cart.cart_id,
            customer_id=cart.customer_id,
            sku=sku,
            quantity=quantity,
        )

    def _finish_cart(self, cart: _Cart) -> list[DomainEvent]:
        del self._open_carts[cart.cart_id]
        self._schedule_visit(cart.customer_id)
        if cart.abandon or not cart.items:
            self._wake_waiting()
            return []
        order_id = self._uuid()
        self._orders_started += 1
        self._checked_out.append(cart)
        self._schedule(
            self._behaviour.mean_order_delay_s, partial(self._create_order, cart, order_id)
        )
        return [
            CartCheckedOut(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=cart.cart_id,
                cart_id=cart.cart_id,
                customer_id=cart.customer_id,
                order_id=order_id,
            )
        ]

    def _wake_waiting(self) -> None:
        """An abandoned cart frees room under the order limit: let one customer in."""
        if self._waiting and self._may_open_cart():
            self._schedule_visit(self._waiting.popleft())

    # -- orders ------------------------------------------------------------------

    def _create_order(self, cart: _Cart, order_id: str) -> list[DomainEvent]:
        lines = tuple(
            OrderLine(sku=sku, quantity=quantity, unit_price=cart.prices[sku])
            for sku, quantity in cart.items.items()
        )
        total = sum((line.amount for line in lines), Decimal(0))
        order = _Order(order_id, cart.cart_id, total)
        self._pending[order_id] = order
        self._next_step(
            order,
            self._behaviour.cancel_unpaid_probability,
            UNPAID_CANCEL_REASONS,
            self._behaviour.mean_payment_s,
            partial(self._pay, order),
        )
        return [
            OrderCreated(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=cart.cart_id,
                order_id=order_id,
                customer_id=cart.customer_id,
                lines=lines,
                total=total,
                currency=self._catalog.currency,
                cart_id=cart.cart_id,
            )
        ]

    def _next_step(
        self,
        order: _Order,
        cancel_probability: float,
        reasons: Sequence[str],
        mean_s: float,
        step: Action,
    ) -> None:
        """Schedule the order's next step: a cancellation (with that probability) or ``step``."""
        if self._rng.random() < cancel_probability:
            reason = self._rng.choice(reasons)
            self._schedule(mean_s, partial(self._cancel, order, reason))
        else:
            self._schedule(mean_s, step)

    def _pay(self, order: _Order) -> list[DomainEvent]:
        del self._pending[order.order_id]
        self._next_step(
            order,
            self._behaviour.cancel_paid_probability,
            PAID_CANCEL_REASONS,
            self._behaviour.mean_confirm_s,
            partial(self._confirm, order),
        )
        return [
            OrderPaid(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=order.cart_id,
                order_id=order.order_id,
                payment_id=self._uuid(),
                amount=order.total,
                currency=self._catalog.currency,
            )
        ]

    def _confirm(self, order: _Order) -> list[DomainEvent]:
        self._next_step(
            order,
            self._behaviour.cancel_confirmed_probability,
            CONFIRMED_CANCEL_REASONS,
            self._behaviour.mean_ship_s,
            partial(self._ship, order),
        )
        return [
            OrderConfirmed(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=order.cart_id,
                order_id=order.order_id,
            )
        ]

    def _ship(self, order: _Order) -> list[DomainEvent]:
        carrier = self._rng.choice(CARRIERS)
        tracking = f"{carrier[:2].upper()}{self._rng.randrange(10**11, 10**12)}"
        return [
            OrderShipped(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=order.cart_id,
                order_id=order.order_id,
                carrier=carrier,
                tracking_number=tracking,
            )
        ]

    def _cancel(self, order: _Order, reason: str) -> list[DomainEvent]:
        self._pending.pop(order.order_id, None)
        self._cancelled.append(order)
        return [
            OrderCancelled(
                event_id=self._event_id(),
                occurred_at=self._now(),
                correlation_id=order.cart_id,
                order_id=order.order_id,
                reason=reason,
            )
        ]

    # -- invalid events ------------------------------------------------------------

    def _invalid_event(self) -> DomainEvent:
        """One event that breaks the rules, marked ``invalid:<kind>``."""
        kind = self._invalid_rng.choice(list(InvalidKind))
        event = self._build_invalid(kind)
        if event is None:  # no target for that kind yet
            kind = InvalidKind.UNKNOWN_ORDER
            event = self._unknown_order(f"{INVALID_PREFIX}{kind}")
        return event

    def _build_invalid(self, kind: InvalidKind) -> DomainEvent | None:
        mark = f"{INVALID_PREFIX}{kind}"
        builders: dict[InvalidKind, Callable[[str], DomainEvent | None]] = {
            InvalidKind.PAY_CANCELLED: self._pay_cancelled,
            InvalidKind.SHIP_UNPAID: self._ship_unpaid,
            InvalidKind.UNKNOWN_ORDER: self._unknown_order,
            InvalidKind.CART_AFTER_CHECKOUT: self._add_after_checkout,
            InvalidKind.REMOVE_TOO_MANY: self._remove_too_many,
        }
        return builders[kind](mark)

    def _bad_uuid(self) -> str:
        return _new_uuid(self._invalid_rng)

    def _pay_cancelled(self, mark: str) -> DomainEvent | None:
        if not self._cancelled:
            return None
        order = self._invalid_rng.choice(self._cancelled)
        return OrderPaid(
            event_id=self._bad_uuid(),
            occurred_at=self._now(),
            correlation_id=mark,
            order_id=order.order_id,
            payment_id=self._bad_uuid(),
            amount=order.total,
            currency=self._catalog.currency,
        )

    def _ship_unpaid(self, mark: str) -> DomainEvent | None:
        if not self._pending:
            return None
        order = self._invalid_rng.choice(list(self._pending.values()))
        return OrderShipped(
            event_id=self._bad_uuid(),
            occurred_at=self._now(),
            correlation_id=mark,
            order_id=order.order_id,
            carrier="DHL",
            tracking_number="DH000000000000",
        )

    def _unknown_order(self, mark: str) -> DomainEvent:
        order_id = self._bad_uuid()
        event_id = self._bad_uuid()
        now = self._now()
        choice = self._invalid_rng.randrange(3)
        if choice == 0:
            return OrderConfirmed(
                event_id=event_id, occurred_at=now, correlation_id=mark, order_id=order_id
            )
        if choice == 1:
            return OrderCancelled(
                event_id=event_id,
                occurred_at=now,
                correlation_id=mark,
                order_id=order_id,
                reason="customer-request",
            )
        return OrderPaid(
            event_id=event_id,
            occurred_at=now,
            correlation_id=mark,
            order_id=order_id,
            payment_id=self._bad_uuid(),
            amount=Decimal("10.00"),
            currency=self._catalog.currency,
        )

    def _add_after_checkout(self, mark: str) -> DomainEvent | None:
        if not self._checked_out:
            return None
        cart = self._invalid_rng.choice(self._checked_out)
        product = self._catalog.pick(self._invalid_rng)
        return CartItemAdded(
            event_id=self._bad_uuid(),
            occurred_at=self._now(),
            correlation_id=mark,
            cart_id=cart.cart_id,
            customer_id=cart.customer_id,
            sku=product.sku,
            quantity=1,
            unit_price=product.price,
            currency=self._catalog.currency,
        )

    def _remove_too_many(self, mark: str) -> DomainEvent | None:
        carts = [cart for cart in self._open_carts.values() if cart.items]
        if not carts:
            return None
        cart = self._invalid_rng.choice(carts)
        sku = self._invalid_rng.choice(list(cart.items))
        return CartItemRemoved(
            event_id=self._bad_uuid(),
            occurred_at=self._now(),
            correlation_id=mark,
            cart_id=cart.cart_id,
            customer_id=cart.customer_id,
            sku=sku,
            quantity=cart.items[sku] + self._invalid_rng.randint(1, 3),
        )
