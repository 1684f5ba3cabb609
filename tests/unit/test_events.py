"""The typed events are the Python side of the contracts: what they accept and refuse.

Every rule breaks with an :class:`EventValidationError` that names the event type,
the field and the rule, so a person (or the DLQ) can tell what was wrong.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from shopstream.domain.limits import MAX_QUANTITY
from shopstream.events import (
    EVENT_TYPES,
    CartCheckedOut,
    CartItemAdded,
    CartItemRemoved,
    Event,
    EventValidationError,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
    event_from_json,
    new_event_id,
    time_ordered_uuid,
    to_millis,
)

EVENT_ID = "6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f"
WHEN = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)


def line(sku: str = "SKU-1", quantity: int = 1, price: str = "10.00") -> OrderLine:
    return OrderLine(sku=sku, quantity=quantity, unit_price=Decimal(price))


# One valid set of fields per event type; each test breaks exactly one of them.
VALID: dict[type[Event], dict[str, Any]] = {
    CartItemAdded: dict(
        cart_id="cart-1",
        customer_id="cust-1",
        sku="SKU-1",
        quantity=2,
        unit_price=Decimal("19.99"),
        currency="EUR",
    ),
    CartItemRemoved: dict(cart_id="cart-1", customer_id="cust-1", sku="SKU-1", quantity=1),
    CartCheckedOut: dict(cart_id="cart-1", customer_id="cust-1", order_id="order-1"),
    OrderCreated: dict(
        order_id="order-1",
        customer_id="cust-1",
        lines=(line("SKU-1", 2, "19.99"), line("SKU-2", 1, "5.50")),
        total=Decimal("45.48"),
        currency="EUR",
        cart_id="cart-1",
    ),
    OrderPaid: dict(
        order_id="order-1", payment_id="pay-1", amount=Decimal("45.48"), currency="EUR"
    ),
    OrderConfirmed: dict(order_id="order-1"),
    OrderShipped: dict(order_id="order-1", carrier="DHL", tracking_number="TRK-1"),
    OrderCancelled: dict(order_id="order-1", reason="customer request"),
}
ALL_TYPES = list(VALID)
E = TypeVar("E", bound=Event)
OPTIONAL = {(OrderCreated, "cart_id")}


def make(cls: type[E], **changes: Any) -> E:
    values = {"event_id": EVENT_ID, "occurred_at": WHEN, **VALID[cls], **changes}
    return cls(**values)


def _param_id(value: object) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


def fields_of(kind: str) -> list[tuple[type[Event], str]]:
    """(event type, field) for every field of the given kind in VALID."""
    text_fields = {
        "cart_id",
        "customer_id",
        "sku",
        "order_id",
        "payment_id",
        "carrier",
        "tracking_number",
        "reason",
    }
    money_fields = {"unit_price", "amount"}
    chosen = {
        "text": text_fields,
        "money": money_fields,
        "quantity": {"quantity"},
        "currency": {"currency"},
    }[kind]
    return [
        (cls, name)
        for cls, values in VALID.items()
        for name in values
        if name in chosen and (cls, name) not in OPTIONAL
    ]


def expect_invalid(
    build: Callable[[], object], event_type: str, field_name: str, rule_words: str
) -> EventValidationError:
    with pytest.raises(EventValidationError) as caught:
        build()
    error = caught.value
    assert (error.event_type, error.field_name) == (event_type, field_name), str(error)
    assert rule_words in error.rule, error.rule
    assert str(error) == f"{event_type}.{field_name}: {error.rule}"
    return error


def test_every_event_type_is_covered() -> None:
    assert {cls.event_type for cls in ALL_TYPES} == set(EVENT_TYPES)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
def test_valid_event_builds_and_is_frozen(cls: type[Event]) -> None:
    event = make(cls)
    assert event.event_id == EVENT_ID
    assert event.occurred_at == WHEN
    assert event.correlation_id is None
    assert event.key == getattr(event, event.aggregate_field)
    with pytest.raises(FrozenInstanceError):
        event.event_id = str(uuid.uuid4())  # type: ignore[misc]


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
def test_defaults_give_a_fresh_uuid_and_now(cls: type[Event]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    first, second = cls(**VALID[cls]), cls(**VALID[cls])
    assert uuid.UUID(first.event_id).version == 7
    assert first.event_id != second.event_id
    assert before <= first.occurred_at <= datetime.now(UTC)
    assert first.occurred_at.tzinfo is UTC
    assert first.occurred_at.microsecond % 1000 == 0


# -- ids and text --------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "name"), fields_of("text"), ids=_param_id)
@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_ids_and_text_must_be_non_empty_strings(cls: type[Event], name: str, bad: object) -> None:
    expect_invalid(lambda: make(cls, **{name: bad}), cls.event_type, name, "non-empty string")


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
@pytest.mark.parametrize("bad", ["", "evt-1", "6f1c2b8e-3d4a-4c5b-9e6f", None, 7])
def test_event_id_must_be_a_uuid(cls: type[Event], bad: object) -> None:
    expect_invalid(lambda: make(cls, event_id=bad), cls.event_type, "event_id", "UUID")


@pytest.mark.parametrize(
    "given",
    [EVENT_ID.upper(), EVENT_ID.replace("-", ""), "{" + EVENT_ID + "}", uuid.UUID(EVENT_ID)],
)
def test_event_id_is_normalized_to_the_canonical_uuid(given: object) -> None:
    assert make(OrderConfirmed, event_id=given).event_id == EVENT_ID


@pytest.mark.parametrize("bad", ["", "  ", 5])
def test_correlation_id_is_optional_but_not_empty(bad: object) -> None:
    assert make(OrderConfirmed, correlation_id="saga-1").correlation_id == "saga-1"
    expect_invalid(
        lambda: make(OrderConfirmed, correlation_id=bad),
        "OrderConfirmed",
        "correlation_id",
        "non-empty string",
    )


def test_optional_order_ids_are_not_empty_when_given() -> None:
    assert make(OrderCreated, cart_id=None, coupon_code=None).cart_id is None
    expect_invalid(lambda: make(OrderCreated, cart_id=""), "OrderCreated", "cart_id", "non-empty")
    expect_invalid(
        lambda: make(OrderCreated, coupon_code=" "), "OrderCreated", "coupon_code", "non-empty"
    )


def test_text_is_unicode_but_not_lone_surrogates() -> None:
    event = make(CartItemRemoved, sku="Käse-🧀-チーズ")
    assert event.sku == "Käse-🧀-チーズ"
    expect_invalid(
        lambda: make(CartItemRemoved, sku="bad\ud800"), "CartItemRemoved", "sku", "surrogate"
    )


# -- quantities ----------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "name"), fields_of("quantity"), ids=_param_id)
@pytest.mark.parametrize("bad", [0, -1, MAX_QUANTITY + 1, 2**31, 1.0, True, "2", None])
def test_quantities_are_positive_ints(cls: type[Event], name: str, bad: object) -> None:
    expect_invalid(lambda: make(cls, **{name: bad}), cls.event_type, name, "positive integer")


def test_quantity_bounds_that_are_valid() -> None:
    assert make(CartItemRemoved, quantity=1).quantity == 1
    assert make(CartItemRemoved, quantity=MAX_QUANTITY).quantity == MAX_QUANTITY


# -- money ---------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "name"), fields_of("money"), ids=_param_id)
@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (Decimal("-0.01"), "not be negative"),
        (Decimal("1.001"), "at most 2 decimals"),
        (Decimal("0.005"), "at most 2 decimals"),
        (Decimal("10000000000.00"), "at most 9999999999.99"),
        (Decimal("1E+10"), "at most 9999999999.99"),
        (Decimal("1E+40"), "at most 9999999999.99"),
        (Decimal("NaN"), "decimal amount"),
        (Decimal("Infinity"), "decimal amount"),
        (12.5, "decimal amount"),
        ("12.50", "decimal amount"),
        (12, "decimal amount"),
        (None, "decimal amount"),
    ],
)
def test_money_rules(cls: type[Event], name: str, bad: object, rule: str) -> None:
    expect_invalid(lambda: make(cls, **{name: bad}), cls.event_type, name, rule)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0", "0.00"),
        ("0.00", "0.00"),
        ("-0", "0.00"),
        ("5", "5.00"),
        ("5.5", "5.50"),
        ("1.230", "1.23"),
        ("1E+2", "100.00"),
        ("0E-7", "0.00"),
        ("9999999999.99", "9999999999.99"),
    ],
)
def test_money_is_normalized_to_two_decimals(given: str, stored: str) -> None:
    """The value decimal(12, 2) carries on the wire, so a round trip keeps even str()."""
    event = make(OrderPaid, amount=Decimal(given))
    assert str(event.amount) == stored
    created = make(OrderCreated, lines=(line(price=given),), total=Decimal(given))
    assert str(created.lines[0].unit_price) == stored
    assert str(created.total) == stored


@pytest.mark.parametrize(("cls", "name"), fields_of("currency"), ids=_param_id)
@pytest.mark.parametrize("bad", ["eur", "EU", "EURO", "E1R", "ÉUR", "", None, "Eur"])
def test_currency_is_three_upper_case_letters(cls: type[Event], name: str, bad: object) -> None:
    expect_invalid(
        lambda: make(cls, currency=bad), cls.event_type, "currency", "3 upper-case letters"
    )


def test_order_created_currency_rule() -> None:
    expect_invalid(
        lambda: make(OrderCreated, currency="usd"),
        "OrderCreated",
        "currency",
        "3 upper-case letters",
    )


# -- orders --------------------------------------------------------------------------


def test_order_total_must_equal_the_sum_of_the_lines() -> None:
    error = expect_invalid(
        lambda: make(OrderCreated, total=Decimal("45.47")),
        "OrderCreated",
        "total",
        "sum of the lines",
    )
    assert "45.48" in error.rule
    assert make(OrderCreated, total=Decimal("45.480")).total == Decimal("45.48")


def test_order_needs_at_least_one_line() -> None:
    expect_invalid(
        lambda: make(OrderCreated, lines=(), total=Decimal(0)),
        "OrderCreated",
        "lines",
        "at least one line",
    )


@pytest.mark.parametrize(
    ("bad_line", "field_name", "rule"),
    [
        (line(sku=""), "lines[1].sku", "non-empty string"),
        (line(quantity=0), "lines[1].quantity", "positive integer"),
        (
            OrderLine(sku="S", quantity=1, unit_price=Decimal("-1")),
            "lines[1].unit_price",
            "not be negative",
        ),
        (
            OrderLine(sku="S", quantity=1, unit_price=Decimal("0.001")),
            "lines[1].unit_price",
            "at most 2 decimals",
        ),
        (
            OrderLine(sku="S", quantity=1, unit_price=1.5),  # type: ignore[arg-type]  # on purpose
            "lines[1].unit_price",
            "decimal amount",
        ),
        ({"sku": "S", "quantity": 1, "unit_price": Decimal(1)}, "lines[1]", "order line"),
    ],
)
def test_order_line_rules_name_the_line(bad_line: object, field_name: str, rule: str) -> None:
    lines = (line(), bad_line)
    expect_invalid(
        lambda: make(OrderCreated, lines=lines, total=Decimal("20.00")),
        "OrderCreated",
        field_name,
        rule,
    )


@pytest.mark.parametrize("bad", [None, "SKU-1", 3, {"sku": "S"}])
def test_order_lines_must_be_a_sequence(bad: object) -> None:
    expect_invalid(lambda: make(OrderCreated, lines=bad), "OrderCreated", "lines", "sequence")


def test_order_lines_may_be_any_iterable_and_are_stored_as_a_tuple() -> None:
    lines = [line("A", 2, "1.25"), line("B", 1, "0.5")]
    event = make(OrderCreated, lines=iter(lines), total=Decimal("3"))
    assert event.lines == (line("A", 2, "1.25"), line("B", 1, "0.50"))
    assert isinstance(event.lines, tuple)
    assert hash(event) == hash(make(OrderCreated, lines=tuple(lines), total=Decimal("3.00")))


def test_order_line_amount() -> None:
    assert line("A", 3, "1.10").amount == Decimal("3.30")


# -- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
            datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
        ),
        (
            datetime(2024, 1, 1, 12, 0, 0, 999999),  # naive means UTC
            datetime(2024, 1, 1, 12, 0, 0, 999000, tzinfo=UTC),
        ),
        (
            datetime(2024, 1, 1, 14, 0, 0, 1500, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 1, 1, 12, 0, 0, 1000, tzinfo=UTC),
        ),
        (
            datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        ),
    ],
)
def test_timestamps_are_normalized_to_utc_milliseconds(given: datetime, expected: datetime) -> None:
    assert to_millis(given) == expected
    event = make(OrderConfirmed, occurred_at=given)
    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is UTC
    assert event.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", ["2024-01-01T00:00:00Z", 1_700_000_000_000, None])
def test_occurred_at_must_be_a_datetime(bad: object) -> None:
    expect_invalid(
        lambda: make(OrderConfirmed, occurred_at=bad), "OrderConfirmed", "occurred_at", "timestamp"
    )


# -- records (what fastavro writes and reads) ----------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
def test_record_round_trip(cls: type[Event]) -> None:
    event = make(cls, correlation_id="saga-9")
    record = event.to_record()
    assert "type" not in record
    assert record["event_id"] == EVENT_ID
    assert cls.from_record(record) == event
    record_with_uuid = {**record, "event_id": uuid.UUID(EVENT_ID)}
    assert cls.from_record(record_with_uuid) == event


def test_order_created_record_holds_lines_as_maps() -> None:
    record = make(OrderCreated).to_record()
    assert record["lines"] == [
        {"sku": "SKU-1", "quantity": 2, "unit_price": Decimal("19.99")},
        {"sku": "SKU-2", "quantity": 1, "unit_price": Decimal("5.50")},
    ]


def test_from_record_ignores_fields_an_older_class_does_not_know() -> None:
    record = {**make(OrderConfirmed).to_record(), "added_later": "x"}
    assert OrderConfirmed.from_record(record) == make(OrderConfirmed)


# -- JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
def test_json_round_trip(cls: type[Event]) -> None:
    event = make(cls, correlation_id="saga-1")
    data = event.to_json()
    assert next(iter(data)) == "type"
    assert data["type"] == cls.event_type
    assert data["occurred_at"] == "2024-05-17T09:30:15.123Z"
    text = json.dumps(data)  # JSON-ready: no Decimal, no datetime
    back = event_from_json(json.loads(text))
    assert back == event
    assert type(back) is cls
    assert back.to_json() == data


def test_json_money_is_a_string_with_two_decimals() -> None:
    data = make(OrderCreated, lines=(line(price="5"),), total=Decimal("5")).to_json()
    assert data["total"] == "5.00"
    assert data["lines"] == [{"sku": "SKU-1", "quantity": 1, "unit_price": "5.00"}]


def test_json_timestamp_with_offset_becomes_utc() -> None:
    data = make(OrderConfirmed).to_json()
    data["occurred_at"] = "2024-05-17T11:30:15.123456+02:00"
    assert event_from_json(data).occurred_at == WHEN


def test_json_may_leave_out_event_id_and_occurred_at() -> None:
    event = event_from_json(
        {"type": "OrderShipped", "order_id": "o-1", "carrier": "UPS", "tracking_number": "1Z"}
    )
    assert isinstance(event, OrderShipped)
    assert uuid.UUID(event.event_id)
    assert event.occurred_at.tzinfo is UTC


def test_json_money_may_be_an_integer() -> None:
    data = {**make(OrderPaid).to_json(), "amount": 45}
    event = event_from_json(data)
    assert isinstance(event, OrderPaid)
    assert str(event.amount) == "45.00"


def test_json_rejects_float_money() -> None:
    paid = {**make(OrderPaid).to_json(), "amount": 45.48}
    expect_invalid(lambda: event_from_json(paid), "OrderPaid", "amount", "string")
    cart = {**make(CartItemAdded).to_json(), "unit_price": 19.99}
    expect_invalid(lambda: event_from_json(cart), "CartItemAdded", "unit_price", "string")
    order = {**make(OrderCreated).to_json(), "total": 45.48}
    expect_invalid(lambda: event_from_json(order), "OrderCreated", "total", "string")
    order = make(OrderCreated).to_json()
    order["lines"][1]["unit_price"] = 5.5
    expect_invalid(lambda: event_from_json(order), "OrderCreated", "lines[1].unit_price", "string")


def test_json_rejects_unknown_fields() -> None:
    data = {**make(OrderConfirmed).to_json(), "colour": "red"}
    expect_invalid(lambda: event_from_json(data), "OrderConfirmed", "colour", "not a field")
    order = make(OrderCreated).to_json()
    order["lines"][0]["discount"] = "1.00"
    expect_invalid(lambda: event_from_json(order), "OrderCreated", "lines[0]", "sku")


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_param_id)
def test_json_names_a_missing_required_field(cls: type[Event]) -> None:
    data = make(cls).to_json()
    required = [name for name in VALID[cls] if (cls, name) not in OPTIONAL]
    for name in required:
        partial = {key: value for key, value in data.items() if key != name}
        expect_invalid(
            functools.partial(event_from_json, partial), cls.event_type, name, "required"
        )


@pytest.mark.parametrize(
    ("data", "field_name", "rule"),
    [
        ([1, 2], "(line)", "JSON object"),
        ({"order_id": "o-1"}, "type", "must be one of"),
        ({"type": "OrderExploded", "order_id": "o-1"}, "type", "OrderExploded"),
    ],
)
def test_json_needs_an_object_of_a_known_type(data: Any, field_name: str, rule: str) -> None:
    expect_invalid(lambda: event_from_json(data), "Event", field_name, rule)


@pytest.mark.parametrize(
    ("change", "field_name", "rule"),
    [
        ({"occurred_at": "yesterday"}, "occurred_at", "ISO-8601"),
        ({"occurred_at": 1_700_000_000_000}, "occurred_at", "ISO-8601"),
        ({"amount": "twelve"}, "amount", "decimal amount"),
        ({"amount": "12.345"}, "amount", "at most 2 decimals"),
        ({"amount": True}, "amount", "decimal amount"),
        ({"amount": None}, "amount", "decimal amount"),
        ({"currency": "eur"}, "currency", "3 upper-case letters"),
        ({"event_id": "not-a-uuid"}, "event_id", "UUID"),
        ({"order_id": ""}, "order_id", "non-empty"),
    ],
)
def test_json_values_are_validated(change: dict[str, Any], field_name: str, rule: str) -> None:
    data = {**make(OrderPaid).to_json(), **change}
    expect_invalid(lambda: event_from_json(data), "OrderPaid", field_name, rule)


@pytest.mark.parametrize(
    ("lines", "field_name", "rule"),
    [
        ("SKU-1", "lines", "list"),
        ([], "lines", "at least one line"),
        ([["SKU-1", 1, "1.00"]], "lines[0]", "sku"),
        (
            [{"sku": "S", "quantity": 1.0, "unit_price": "45.48"}],
            "lines[0].quantity",
            "positive integer",
        ),
    ],
)
def test_json_order_lines_are_validated(lines: Any, field_name: str, rule: str) -> None:
    data = {**make(OrderCreated).to_json(), "lines": lines}
    expect_invalid(lambda: event_from_json(data), "OrderCreated", field_name, rule)


def test_event_ids_are_uuid7_in_time_order() -> None:
    early = time_ordered_uuid(1_700_000_000_000, 2**74 - 1)
    late = time_ordered_uuid(1_700_000_000_001, 0)
    parsed = uuid.UUID(early)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == 1_700_000_000_000  # the milliseconds lead
    assert early < late  # the text sorts like the time
    assert time_ordered_uuid(0, 2**74 - 1) == "00000000-0000-7fff-bfff-ffffffffffff"
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert [uuid.UUID(i).int >> 80 for i in ids] == sorted(uuid.UUID(i).int >> 80 for i in ids)
