"""Choosing dead letters to redrive: coordinates, filters, and the derived event id."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from shopstream.errors import UsageError
from shopstream.events import OrderPaid
from shopstream.inspection.decode import InspectedMessage
from shopstream.inspection.dlq_reader import DeadLetter
from shopstream.redrive import Coordinates, Selection, redrive_event_id


def letter(
    offset: int, *, group: str = "order-state", reason: str = "unknown-order", at: int = 1000
) -> DeadLetter:
    event = OrderPaid(order_id="o-1", payment_id="p-1", amount=Decimal("5.00"), currency="EUR")
    headers = {
        "dlq.reason": reason,
        "dlq.group": group,
        "dlq.topic": "order-events",
        "dlq.partition": "2",
        "dlq.offset": "40",
    }
    message = InspectedMessage(
        topic="order-events.dlq",
        partition=0,
        offset=offset,
        timestamp_ms=at,
        key="o-1",
        headers=headers,
        size=10,
        event_type="OrderPaid",
        event=event.to_json(),
    )
    return DeadLetter.from_message(message)


def test_coordinates() -> None:
    assert Coordinates.parse("12") == Coordinates(0, 12)
    assert Coordinates.parse(" 3:4 ") == Coordinates(3, 4)
    for bad in ("", "x", "1:y", "-1:2", "1:-2", "1:2:3"):
        with pytest.raises(UsageError):
            Coordinates.parse(bad)


def test_filters_all_apply() -> None:
    assert Selection("order-events", group="order-state").matches(letter(1))
    assert not Selection("order-events", group="sales-projection").matches(letter(1))
    assert not Selection("order-events", reason="illegal-transition").matches(letter(1))
    window = Selection("order-events", since_ms=500, until_ms=1500)
    assert window.matches(letter(1, at=1000))
    assert not window.matches(letter(1, at=2000))
    assert Selection("order-events", at=(Coordinates(0, 7),)).matches(letter(7))
    assert not Selection("order-events", at=(Coordinates(0, 7),)).matches(letter(8))
    with pytest.raises(UsageError, match="window is empty"):
        Selection("order-events", since_ms=2, until_ms=1)
    with pytest.raises(UsageError):
        Selection("order-events", limit=0)


def test_the_new_event_id_belongs_to_the_original_event() -> None:
    """Two groups' letters of one event give one id; another event gives another."""
    first = letter(1, group="order-state", at=1000)
    second = letter(2, group="sales-projection", at=5000)
    assert redrive_event_id(first) == redrive_event_id(second)
    assert redrive_event_id(first) != first.event_id
    moved = replace(first.message, headers={**first.message.headers, "dlq.offset": "41"})
    other = DeadLetter.from_message(moved)
    assert redrive_event_id(other) != redrive_event_id(first)
