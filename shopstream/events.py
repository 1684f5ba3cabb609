"""Typed, immutable domain events: the Python side of the Avro contracts in ``schemas/``.

Every event validates itself on construction against the domain limits
(``shopstream/domain/limits.py``: ``event_id`` a UUID, text fields non-empty, within
their lengths and free of control characters, quantities and money in range, a line's
amount within NUMERIC(12, 2), currency three upper-case letters) and order totals equal
to the sum of their lines, and raises :class:`EventValidationError` naming the field and
the rule.
Values are normalized to what the wire carries, so an event equals itself (down to
``str`` of every value) after a round trip: timestamps to UTC milliseconds (Avro
``timestamp-millis``), money to exactly two decimals (Avro ``decimal(12, 2)``:
``Decimal("5")`` becomes ``Decimal("5.00")``), ``event_id`` to the canonical
lower-case UUID form.

``to_record``/``from_record`` convert to and from the dicts fastavro reads and writes;
``to_json``/``event_from_json`` to and from the JSON people type (decimals as strings,
timestamps as ISO-8601).
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Self, cast

from shopstream.domain import limits
from shopstream.errors import ShopstreamError

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EventValidationError(ShopstreamError, ValueError):
    """An event value breaks a rule of the contract; names the field and the rule."""

    exit_code = 2

    def __init__(self, event_type: str, field_name: str, rule: str) -> None:
        super().__init__(f"{event_type}.{field_name}: {rule}")
        self.event_type = event_type
        self.field_name = field_name
        self.rule = rule


def new_event_id() -> str:
    """A fresh event id: a UUIDv7, time-ordered (see :func:`time_ordered_uuid`)."""
    return time_ordered_uuid(time.time_ns() // 1_000_000, secrets.randbits(74))


_UUID7_RANDOM_A = 12  # random bits between the version and the variant (rand_a)
_UUID7_RANDOM_B = 62  # random bits after the variant (rand_b)


def time_ordered_uuid(unix_ms: int, random_bits: int) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Ids made one after the other sort (and land in an index) one after the other:
    the consumers' ``processed_events`` index then grows at its right edge instead of
    touching a random page per event (on SQLite about eight times cheaper per
    insert). Any UUID is accepted as an event id; this is only what we produce.
    """
    rand_a = (random_bits >> _UUID7_RANDOM_B) & ((1 << _UUID7_RANDOM_A) - 1)
    rand_b = random_bits & ((1 << _UUID7_RANDOM_B) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid_text(value)


def uuid_text(value: int) -> str:
    """``str(uuid.UUID(int=value))``, without building the UUID."""
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def now_utc() -> datetime:
    return to_millis(datetime.now(UTC))


def to_millis(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to whole milliseconds (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    micro = moment.microsecond
    return moment if micro % 1000 == 0 else moment.replace(microsecond=micro - micro % 1000)


_MAX_TEXT = {name: limit.max_length for name, limit in limits.TEXT_FIELDS.items()}


def _check_text(event: str, name: str, value: object) -> None:
    max_length = _MAX_TEXT.get(name)
    if (  # the common case, decided cheaply: only when limits.text_problem finds none
        max_length is not None
        and type(value) is str
        and 0 < len(value) <= max_length
        and value.isprintable()
        and not value.isspace()
    ):
        return
    problem = limits.text_problem(name, value)
    if problem is not None:
        raise EventValidationError(event, name, problem)


def _uuid(event: str, name: str, value: object) -> str:
    """``value`` as a canonical (lower-case, hyphenated) UUID string."""
    if isinstance(value, str):
        if _CANONICAL_UUID.fullmatch(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    elif isinstance(value, uuid.UUID):
        return str(value)
    raise EventValidationError(event, name, "must be a UUID")


def _check_quantity(event: str, name: str, value: object) -> None:
    if type(value) is int and 1 <= value <= limits.MAX_QUANTITY:
        return
    problem = limits.quantity_problem(value)
    if problem is not None:
        raise EventValidationError(event, name, problem)


def _money(event: str, name: str, value: object) -> Decimal:
    """``value`` checked as decimal(12, 2) money and normalized to exactly 2 decimals."""
    if (  # already normalized (exactly 2 decimals, not -0.00) and in range: kept as is
        type(value) is Decimal
        and value.same_quantum(limits.CENT)
        and not value.is_signed()
        and value <= limits.MAX_MONEY
    ):
        return value
    problem = limits.money_problem(value)
    if problem is not None or not isinstance(value, Decimal):
        raise EventValidationError(event, name, problem or "must be a decimal amount")
    return value.quantize(limits.CENT).copy_abs()  # and -0.00 is 0.00


def _check_line_amount(event: str, name: str, quantity: int, unit_price: Decimal) -> None:
    if unit_price * quantity <= limits.MAX_MONEY:
        return
    problem = limits.line_amount_problem(quantity, unit_price)
    if problem is not None:
        raise EventValidationError(event, name, problem)


def _set_money(event: Event, name: str) -> None:
    value = getattr(event, name)
    money = _money(event.event_type, name, value)
    if money is not value:
        object.__setattr__(event, name, money)


_CURRENCIES_SEEN: set[str] = set()
"""Currency codes found valid (at most 26**3), so each is checked once."""


def _check_currency(event: str, value: object) -> None:
    if type(value) is str and value in _CURRENCIES_SEEN:
        return
    problem = limits.currency_problem(value)
    if problem is not None:
        raise EventValidationError(event, "currency", problem)
    _CURRENCIES_SEEN.add(cast(str, value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries."""

    event_type: ClassVar[str] = "Event"
    aggregate_field: ClassVar[str] = ""

    event_id: str = field(default_factory=new_event_id)
    occurred_at: datetime = field(default_factory=now_utc)
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        event_id = self.event_id
        if type(event_id) is not str or not _CANONICAL_UUID.fullmatch(event_id):
            object.__setattr__(self, "event_id", _uuid(self.event_type, "event_id", event_id))
        occurred_at = self.occurred_at  # UTC, whole milliseconds: what to_millis keeps as is
        if (
            type(occurred_at) is not datetime
            or occurred_at.tzinfo is not UTC
            or occurred_at.microsecond % 1000
        ):
            self._normalize_occurred_at()
        if self.correlation_id is not None:
            _check_text(self.event_type, "correlation_id", self.correlation_id)
        self.validate()

    def _normalize_occurred_at(self) -> None:
        if not isinstance(self.occurred_at, datetime):
            raise EventValidationError(self.event_type, "occurred_at", "must be a timestamp")
        try:
            normalized = to_millis(self.occurred_at)
        except OverflowError:  # a zone that moves it out of years 1-9999 in UTC
            raise EventValidationError(
                self.event_type, "occurred_at", "is out of the range of dates"
            ) from None
        if normalized is not self.occurred_at:
            object.__setattr__(self, "occurred_at", normalized)
        if self.correlation_id is not None:
            _check_text(self.event_type, "correlation_id", self.correlation_id)
        self.validate()

    def validate(self) -> None:
        """Per-type rules; raise EventValidationError."""

    @property
    def key(self) -> str:
        """The aggregate id this event is keyed (and partitioned) by."""
        value: str = getattr(self, self.aggregate_field)
        return value

    def to_record(self) -> dict[str, Any]:
        """The dict fastavro writes for this event."""
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """Build (and validate) an event from the dict fastavro read."""
        names = _field_names(cls)
        values = {name: record[name] for name in names if name in record}
        event_id = values.get("event_id")
        if isinstance(event_id, uuid.UUID):
            values["event_id"] = str(event_id)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with ``type`` first; decimals as strings, times ISO-8601."""
        out: dict[str, Any] = {"type": self.event_type}
        out.update({name: _jsonable(value) for name, value in self.to_record().items()})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls))
        _FIELD_NAMES[cls] = names
    return names


# -- cart events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CartEvent(Event):
    aggregate_field: ClassVar[str] = "cart_id"

    cart_id: str
    customer_id: str

    def validate(self) -> None:
        _check_text(self.event_type, "cart_id", self.cart_id)
        _check_text(self.event_type, "customer_id", self.customer_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class CartItemAdded(CartEvent):
    event_type: ClassVar[str] = "CartItemAdded"

    sku: str
    quantity: int
    unit_price: Decimal
    currency: str

    def validate(self) -> None:
        CartEvent.validate(self)
        _check_text(self.event_type, "sku", self.sku)
        _check_quantity(self.event_type, "quantity", self.quantity)
        _set_money(self, "unit_price")
        _check_line_amount(self.event_type, "quantity", self.quantity, self.unit_price)
        _check_currency(self.event_type, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class CartItemRemoved(CartEvent):
    event_type: ClassVar[str] = "CartItemRemoved"

    sku: str
    quantity: int

    def validate(self) -> None:
        CartEvent.validate(self)
        _check_text(self.event_type, "sku", self.sku)
        _check_quantity(self.event_type, "quantity", self.quantity)


@dataclass(frozen=True, slots=True, kw_only=True)
class CartCheckedOut(CartEvent):
    event_type: ClassVar[str] = "CartCheckedOut"

    order_id: str

    def validate(self) -> None:
        CartEvent.validate(self)
        _check_text(self.event_type, "order_id", self.order_id)


# -- order events --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One product of an order."""

    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent(Event):
    aggregate_field: ClassVar[str] = "order_id"

    order_id: str

    def validate(self) -> None:
        _check_text(self.event_type, "order_id", self.order_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCreated(OrderEvent):
    event_type: ClassVar[str] = "OrderCreated"

    customer_id: str
    lines: tuple[OrderLine, ...]
    total: Decimal
    currency: str
    cart_id: str | None = None
    coupon_code: str | None = None

    def validate(self) -> None:
        OrderEvent.validate(self)
        name = self.event_type
        _check_text(name, "customer_id", self.customer_id)
        raw_lines: object = self.lines
        if isinstance(raw_lines, str | bytes | Mapping) or not isinstance(raw_lines, Iterable):
            raise EventValidationError(name, "lines", "must be a sequence of order lines")
        lines: list[OrderLine] = []
        for index, line in enumerate(raw_lines):
            if not isinstance(line, OrderLine):
                raise EventValidationError(name, f"lines[{index}]", "must be an order line")
            _check_text(name, f"lines[{index}].sku", line.sku)
            _check_quantity(name, f"lines[{index}].quantity", line.quantity)
            price = _money(name, f"lines[{index}].unit_price", line.unit_price)
            _check_line_amount(name, f"lines[{index}]", line.quantity, price)
            if price.same_quantum(line.unit_price) and not line.unit_price.is_signed():
                lines.append(line)
            else:
                lines.append(OrderLine(sku=line.sku, quantity=line.quantity, unit_price=price))
        if not lines:
            raise EventValidationError(name, "lines", "must hold at least one line")
        if len(lines) > limits.MAX_ORDER_LINES:
            raise EventValidationError(
                name, "lines", f"must hold at most {limits.MAX_ORDER_LINES:,} lines"
            )
        object.__setattr__(self, "lines", tuple(lines))
        _set_money(self, "total")
        _check_currency(name, self.currency)
        expected = sum((line.amount for line in self.lines), Decimal(0))
        if expected != self.total:
            raise EventValidationError(
                name, "total", f"must equal the sum of the lines ({expected}), got {self.total}"
            )
        if self.cart_id is not None:
            _check_text(name, "cart_id", self.cart_id)
        if self.coupon_code is not None:
            _check_text(name, "coupon_code", self.coupon_code)

    def to_record(self) -> dict[str, Any]:
        record = Event.to_record(self)
        record["lines"] = [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
            for line in self.lines
        ]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        converted = dict(record)
        raw_lines = record.get("lines")
        if isinstance(raw_lines, list):
            converted["lines"] = tuple(
                OrderLine(
                    sku=line.get("sku"),
                    quantity=line.get("quantity"),
                    unit_price=_decimal(line.get("unit_price")),
                )
                for line in raw_lines
            )
        return super(OrderCreated, cls).from_record(converted)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid(OrderEvent):
    event_type: ClassVar[str] = "OrderPaid"

    payment_id: str
    amount: Decimal
    currency: str

    def validate(self) -> None:
        OrderEvent.validate(self)
        _check_text(self.event_type, "payment_id", self.payment_id)
        _set_money(self, "amount")
        _check_currency(self.event_type, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderConfirmed(OrderEvent):
    event_type: ClassVar[str] = "OrderConfirmed"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped(OrderEvent):
    event_type: ClassVar[str] = "OrderShipped"

    carrier: str
    tracking_number: str

    def validate(self) -> None:
        OrderEvent.validate(self)
        _check_text(self.event_type, "carrier", self.carrier)
        _check_text(self.event_type, "tracking_number", self.tracking_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(OrderEvent):
    event_type: ClassVar[str] = "OrderCancelled"

    reason: str

    def validate(self) -> None:
        OrderEvent.validate(self)
        _check_text(self.event_type, "reason", self.reason)


CART_EVENTS: tuple[type[CartEvent], ...] = (CartItemAdded, CartItemRemoved, CartCheckedOut)
ORDER_EVENTS: tuple[type[OrderEvent], ...] = (
    OrderCreated,
    OrderPaid,
    OrderConfirmed,
    OrderShipped,
    OrderCancelled,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.event_type: cls for cls in (*CART_EVENTS, *ORDER_EVENTS)}

DomainEvent = (
    CartItemAdded
    | CartItemRemoved
    | CartCheckedOut
    | OrderCreated
    | OrderPaid
    | OrderConfirmed
    | OrderShipped
    | OrderCancelled
)


# -- JSON (for people: produce files, inspection output) --------------------------------

MONEY_FIELDS = frozenset({"unit_price", "total", "amount"})


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value  # floats and others are rejected by validation


def _timestamp(event_type: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise EventValidationError(event_type, "occurred_at", "must be an ISO-8601 timestamp")


def event_from_json(data: Any) -> DomainEvent:
    """Build a validated event from a JSON object with a ``type`` member.

    Missing ``event_id`` and ``occurred_at`` are generated (a new uuid, now).
    Money must be a JSON string or integer, never a float (floats are not exact).
    """
    if not isinstance(data, dict):
        raise EventValidationError("Event", "(line)", "must be a JSON object")
    event_type = data.get("type")
    cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        known = ", ".join(EVENT_TYPES)
        raise EventValidationError("Event", "type", f"must be one of {known}; got {event_type!r}")
    allowed = set(_field_names(cls))
    unknown = sorted(set(data) - allowed - {"type"})
    if unknown:
        raise EventValidationError(cls.event_type, unknown[0], "is not a field of this event")
    values: dict[str, Any] = {key: value for key, value in data.items() if key != "type"}
    for name in MONEY_FIELDS & values.keys():
        if isinstance(values[name], float):
            raise EventValidationError(cls.event_type, name, 'money must be a string like "12.50"')
        values[name] = _decimal(values[name])
    if "occurred_at" in values:
        values["occurred_at"] = _timestamp(cls.event_type, values["occurred_at"])
    if cls is OrderCreated and "lines" in values:
        values["lines"] = _lines_from_json(values["lines"])
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in values and f.default is f.default_factory  # both MISSING
    ]
    if missing:
        raise EventValidationError(cls.event_type, missing[0], "is required")
    try:
        event = cls(**values)
    except TypeError as exc:
        raise EventValidationError(cls.event_type, "(fields)", str(exc)) from None
    return event  # type: ignore[return-value]


def _lines_from_json(raw: Any) -> tuple[OrderLine, ...]:
    if not isinstance(raw, list):
        raise EventValidationError("OrderCreated", "lines", "must be a list of lines")
    lines = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"sku", "quantity", "unit_price"}:
            raise EventValidationError(
                "OrderCreated", f"lines[{index}]", "must be {sku, quantity, unit_price}"
            )
        price = item["unit_price"]
        if isinstance(price, float):
            raise EventValidationError(
                "OrderCreated", f"lines[{index}].unit_price", 'money must be a string like "12.50"'
            )
        lines.append(
            OrderLine(sku=item["sku"], quantity=item["quantity"], unit_price=_decimal(price))
        )
    return tuple(lines)
