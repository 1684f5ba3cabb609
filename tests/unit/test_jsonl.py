"""JSON Lines of events: parsing, validation with line numbers and reasons, writing."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shopstream.events import CartItemAdded, OrderCreated, OrderLine, OrderPaid
from shopstream.jsonl import (
    LineError,
    dumps_event,
    parse_line,
    valid_events,
    validate_lines,
)
from shopstream.simulation.simulator import SimulationConfig, Simulator

EVENT_ID = "2f1f3c1e-8a9b-4c55-9d1e-0a4b6c8d2e11"
PAID = {
    "type": "OrderPaid",
    "event_id": EVENT_ID,
    "occurred_at": "2026-01-01T08:00:00.000Z",
    "order_id": "order-1",
    "payment_id": "pay-1",
    "amount": "59.80",
    "currency": "EUR",
}


def line(**changes: object) -> str:
    data: dict[str, object] = {**PAID, **changes}
    return json.dumps({key: value for key, value in data.items() if value is not ...})


def test_a_valid_line_becomes_its_event() -> None:
    event = parse_line(line(), 1)
    assert event == OrderPaid(
        event_id=EVENT_ID,
        occurred_at=datetime(2026, 1, 1, 8, tzinfo=UTC),
        order_id="order-1",
        payment_id="pay-1",
        amount=Decimal("59.80"),
        currency="EUR",
    )


def test_event_id_and_time_are_generated_when_left_out() -> None:
    event = parse_line(line(event_id=..., occurred_at=...), 1)
    assert isinstance(event, OrderPaid)
    assert event.event_id != EVENT_ID
    assert event.occurred_at.year >= 2026


@pytest.mark.parametrize("blank", ["", "\n", "   \n", "\r\n"])
def test_blank_lines_are_skipped(blank: str) -> None:
    assert parse_line(blank, 3) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "OrderPaid"', "not valid JSON: Expecting ',' delimiter (column 21)"),
        ("[1, 2]", 'expected a JSON object with a "type", got an array'),
        ('"OrderPaid"', 'expected a JSON object with a "type", got a string'),
        ("42", 'expected a JSON object with a "type", got a number'),
        ("null", 'expected a JSON object with a "type", got null'),
        (line(type="OrderLost"), "Event.type: must be one of"),
        (line(type=...), "Event.type: must be one of"),
        (line(amount="-1"), "OrderPaid.amount: must not be negative"),
        (line(amount=12.5), 'OrderPaid.amount: money must be a string like "12.50"'),
        (line(amount="1.234"), "OrderPaid.amount: must have at most 2 decimals"),
        (line(currency="euro"), "OrderPaid.currency: must be 3 upper-case letters"),
        (line(payment_id=...), "OrderPaid.payment_id: is required"),
        (line(colour="red"), "OrderPaid.colour: is not a field of this event"),
        (line(event_id="not-a-uuid"), "OrderPaid.event_id: must be a UUID"),
        (line(occurred_at="yesterday"), "OrderPaid.occurred_at: must be an ISO-8601 timestamp"),
    ],
)
def test_an_invalid_line_says_why(text: str, reason: str) -> None:
    error = parse_line(text, 7)
    assert isinstance(error, LineError)
    assert error.line == 7
    assert error.reason.startswith(reason), error.reason
    assert "\n" not in error.reason


def test_an_order_total_must_match_its_lines() -> None:
    text = json.dumps(
        {
            "type": "OrderCreated",
            "order_id": "o-1",
            "customer_id": "c-1",
            "currency": "EUR",
            "lines": [{"sku": "A", "quantity": 2, "unit_price": "1.50"}],
            "total": "4.00",
        }
    )
    error = parse_line(text, 1)
    assert isinstance(error, LineError)
    assert error.reason == "OrderCreated.total: must equal the sum of the lines (3.00), got 4.00"


def test_bytes_that_are_not_utf8_are_reported() -> None:
    error = parse_line(b'{"type": "\xff"}\n', 2)
    assert error == LineError(2, "not UTF-8 text (byte 11)")


def test_a_byte_order_mark_on_the_first_line_is_ignored() -> None:
    assert isinstance(parse_line("\ufeff" + line(), 1), OrderPaid)


def test_crlf_line_endings_are_fine() -> None:
    assert isinstance(parse_line(line() + "\r\n", 1), OrderPaid)


def test_validation_numbers_lines_from_one_counting_blank_ones() -> None:
    lines = [line() + "\n", "\n", "{oops\n", line(amount="-5") + "\n", line() + "\n"]
    result = validate_lines(lines)
    assert result.lines == 5
    assert result.valid == 2
    assert result.by_type == {"OrderPaid": 2}
    assert [error.line for error in result.errors] == [3, 4]
    assert str(result.errors[1]) == "line 4: OrderPaid.amount: must not be negative"
    assert not result.ok


def test_validation_reads_a_binary_file() -> None:
    source = io.BytesIO((line() + "\n" + line(type="CartItemAdded") + "\n").encode())
    result = validate_lines(source)
    assert result.valid == 1
    assert result.errors[0].line == 2


def test_valid_events_leaves_out_invalid_lines_in_order() -> None:
    lines = [line(order_id="a"), "nonsense", line(order_id="b")]
    assert [event.order_id for event in valid_events(lines)] == ["a", "b"]  # type: ignore[union-attr]


def test_written_events_read_back_identical() -> None:
    events = list(
        Simulator(SimulationConfig(customers=5, orders=20, seed=2, invalid_rate=0.1)).events()
    )
    out = io.StringIO()
    out.writelines(dumps_event(event) + "\n" for event in events)
    text = out.getvalue()
    assert text.count("\n") == len(events)
    assert list(valid_events(text.splitlines(keepends=True))) == events
    assert validate_lines(text.splitlines()).ok


def test_dumps_is_one_compact_line_with_the_type_first() -> None:
    event = OrderCreated(
        event_id=EVENT_ID,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        order_id="o-1",
        customer_id="c-1",
        lines=(OrderLine("A", 2, Decimal("1.5")),),
        total=Decimal(3),
        currency="EUR",
    )
    text = dumps_event(event)
    assert "\n" not in text
    assert text.startswith('{"type":"OrderCreated","event_id":"' + EVENT_ID)
    assert '"unit_price":"1.50"' in text and '"total":"3.00"' in text
    assert parse_line(text, 1) == event


def test_non_ascii_text_round_trips() -> None:
    event = CartItemAdded(
        cart_id="cart-ü",
        customer_id="Zoë",
        sku="KAFFEE-☕",
        quantity=1,
        unit_price=Decimal("4.20"),
        currency="EUR",
    )
    assert parse_line(dumps_event(event).encode(), 1) == event
