"""The compiled Avro encoders write fastavro's bytes, byte for byte."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings

from schemas import HISTORY_DIR, load_catalog, load_event_schema, parse_for_codec
from shopstream.avro_encoder import compile_encoder, write_long, write_millis
from shopstream.events import EVENT_TYPES, DomainEvent, OrderCreated, OrderLine
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.support.event_strategies import STRATEGIES

PREFIX = b"\x00\x00\x00\x01\x2c"


def fastavro_bytes(parsed: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(PREFIX)
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def encoder_of(event_type: str) -> Any:
    parsed = load_catalog().get(event_type).parsed
    encoder = compile_encoder(parsed, EVENT_TYPES[event_type], PREFIX)
    assert encoder is not None, f"{event_type} is not compiled"
    return parsed, encoder


def assert_same_bytes(event: DomainEvent) -> None:
    parsed, encoder = encoder_of(event.event_type)
    assert encoder(event) == fastavro_bytes(parsed, event.to_record())


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_generated_events_encode_as_fastavro_does(event_type: str) -> None:
    """Unicode text, money at its limits, moments in several zones, None and values in
    the optional fields, 1-5 order lines."""

    @settings(max_examples=200, deadline=None)
    @given(event=STRATEGIES[event_type])
    def check(event: DomainEvent) -> None:
        assert_same_bytes(event)

    check()


def test_simulated_events_encode_as_fastavro_does() -> None:
    config = SimulationConfig(customers=300, orders=None, seed=11, invalid_rate=0.05)
    events = list(islice(Simulator(config).events(), 5_000))
    assert {event.event_type for event in events} == set(EVENT_TYPES)
    for event in events:
        assert_same_bytes(event)


def test_an_older_writer_schema_writes_only_its_own_fields() -> None:
    """OrderCreated v1 (no coupon_code), as when the registry's latest version is older."""
    old = load_event_schema(HISTORY_DIR / "OrderCreated.v1.avsc").parsed
    encoder = compile_encoder(old, OrderCreated, PREFIX)
    assert encoder is not None
    event = OrderCreated(
        order_id="o-1",
        customer_id="c-1",
        lines=(OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("0.50")),),
        total=Decimal("1.00"),
        currency="EUR",
        coupon_code="SPRING",
    )
    record = {key: value for key, value in event.to_record().items() if key != "coupon_code"}
    assert encoder(event) == fastavro_bytes(old, record)


@dataclass(frozen=True)
class Wide:
    name: str
    count: int
    when: datetime
    price: Decimal
    note: str | None


WIDE_SCHEMA = {
    "type": "record",
    "name": "Wide",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 3},
        },
        {"name": "note", "type": ["string", "null"]},
    ],
}


@pytest.mark.parametrize(
    "value",
    [
        Wide(
            "x" * 5_000,
            0,
            datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
            Decimal(0),
            None,
        ),
        Wide("é" * 3_000, -1, datetime(2200, 1, 1, tzinfo=UTC), Decimal("-128.5"), "n"),
        Wide("a", 2**62, datetime(1970, 1, 1, tzinfo=UTC), Decimal("99999999999.999"), ""),
        Wide("b", -(2**63), datetime(1900, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC), Decimal("5"), None),
    ],
    ids=["long-text", "negative", "large", "smallest-long"],
)
def test_edges_beyond_the_events_encode_as_fastavro_does(value: Wide) -> None:
    """Long strings (lengths past the lookup table), negative and 64-bit longs, moments
    before 1970, negative decimals, a union with null second."""
    parsed = parse_for_codec(WIDE_SCHEMA)
    encoder = compile_encoder(parsed, Wide, PREFIX)
    assert encoder is not None
    record = {name: getattr(value, name) for name in ("name", "count", "when", "price", "note")}
    assert encoder(value) == fastavro_bytes(parsed, record)


def test_a_decimal_finer_than_the_scale_is_refused_like_fastavro() -> None:
    parsed = parse_for_codec(WIDE_SCHEMA)
    encoder = compile_encoder(parsed, Wide, PREFIX)
    assert encoder is not None
    value = Wide("a", 1, datetime(2026, 1, 1, tzinfo=UTC), Decimal("1.0001"), None)
    with pytest.raises(ValueError, match="Scale"):
        encoder(value)


@pytest.mark.parametrize(
    "field",
    [
        {"name": "name", "type": "boolean"},
        {"name": "name", "type": ["null", "string", "long"]},
        {"name": "missing", "type": "string"},
        {"name": "name", "type": {"type": "map", "values": "string"}},
    ],
    ids=["boolean", "three-branch-union", "no-such-attribute", "map"],
)
def test_schemas_it_does_not_cover_are_left_to_fastavro(field: dict[str, Any]) -> None:
    parsed = parse_for_codec({"type": "record", "name": "Other", "fields": [field]})
    assert compile_encoder(parsed, Wide, PREFIX) is None


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 8191, -8193, 2**31, 2**63 - 1])
def test_write_long_is_avro_zigzag(value: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", value)
    assert bytes(write_long(value)) == buffer.getvalue()


def test_write_millis_is_write_long_across_its_cache() -> None:
    """Timestamps over 10,000 cache entries (more than it keeps), either side of 1970."""
    step = 1 << 13  # one cached tail each
    for value in [*range(-20_000, 20_000, 7), *range(-(10**12), 10**12, (10**12 // 5_000) + step)]:
        assert bytes(write_millis(value)) == bytes(write_long(value)), value
