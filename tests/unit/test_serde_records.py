"""The encoder's records (logical types converted up front) write the same bytes as
fastavro's own conversions of :meth:`Event.to_record`."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import HISTORY_DIR, load_catalog, load_event_schema
from shopstream.events import (
    EVENT_TYPES,
    DomainEvent,
    OrderCancelled,
    OrderCreated,
    OrderLine,
)
from shopstream.serde import decimal_bytes, epoch_millis, record_builder
from shopstream.simulation.simulator import SimulationConfig, Simulator

CATALOG = load_catalog()
DECIMAL_12_2 = fastavro.parse_schema(
    {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
)
MILLIS = fastavro.parse_schema({"type": "long", "logicalType": "timestamp-millis"})


def write(parsed: Any, datum: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    return buffer.getvalue()


def simulated() -> list[DomainEvent]:
    config = SimulationConfig(customers=40, orders=None, seed=5, invalid_rate=0.2)
    return list(islice(Simulator(config).events(), 3000))


def test_every_simulated_event_encodes_to_the_same_bytes() -> None:
    events = simulated()
    assert {event.event_type for event in events} == set(EVENT_TYPES)
    for event in events:
        parsed = CATALOG.get(event.event_type).parsed
        fast = record_builder(type(event), parsed)(event)
        assert write(parsed, fast) == write(parsed, event.to_record()), event


def test_optional_fields_and_an_old_writer_schema() -> None:
    event = OrderCreated(
        order_id="o-1",
        customer_id="c-1",
        lines=(OrderLine("SKU-1", 2, Decimal("0.50")), OrderLine("SKU-2", 1, Decimal("128.00"))),
        total=Decimal("129.00"),
        currency="EUR",
        coupon_code="WELCOME",
    )
    v1 = load_event_schema(HISTORY_DIR / "OrderCreated.v1.avsc").parsed
    for parsed in (CATALOG.get("OrderCreated").parsed, v1):
        fast = record_builder(OrderCreated, parsed)(event)
        assert write(parsed, fast) == write(parsed, event.to_record())
    cancelled = OrderCancelled(order_id="o-1", reason="customer-request", correlation_id=None)
    parsed = CATALOG.get("OrderCancelled").parsed
    fast = record_builder(OrderCancelled, parsed)(cancelled)
    assert write(parsed, fast) == write(parsed, cancelled.to_record())


@given(st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1))
def test_decimal_bytes_read_back_as_the_same_decimal(cents: int) -> None:
    value = Decimal(cents).scaleb(-2)
    encoded = write(DECIMAL_12_2, decimal_bytes(2, value))
    assert fastavro.schemaless_reader(io.BytesIO(encoded), DECIMAL_12_2) == value
    if cents >= 0:  # non-negative amounts: byte for byte what fastavro writes
        assert encoded == write(DECIMAL_12_2, value)


def test_decimal_bytes_refuse_more_decimals_than_the_scale() -> None:
    with pytest.raises(ValueError, match="more than 2 decimals"):
        decimal_bytes(2, Decimal("1.005"))


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_epoch_millis_is_what_fastavro_writes(moment: datetime) -> None:
    moment = moment - timedelta(microseconds=moment.microsecond % 1000)
    assert write(MILLIS, epoch_millis(moment)) == write(MILLIS, moment)
