"""Typed event ⇄ Confluent-framed Avro bytes, against the real schema registry.

Every test works under topics (so subjects) with a prefix of its own, so it neither
depends on nor disturbs the global subjects; the subjects are deleted afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any, Protocol

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from hypothesis import HealthCheck, given, settings

from schemas import HISTORY_DIR, SchemaCatalog, load_catalog, load_event_schema
from shopstream.config import Settings
from shopstream.events import (
    EVENT_TYPES,
    CartItemAdded,
    DomainEvent,
    EventValidationError,
    OrderCreated,
    OrderLine,
    OrderPaid,
)
from shopstream.registry.admin import register_one
from shopstream.serde import (
    EVENT_TYPE_HEADER,
    HEADER,
    MAGIC_BYTE,
    DecodeError,
    EventDeserializer,
    EventSerializer,
    SchemaRegistrationError,
    make_registry_client,
)
from tests.support.event_strategies import STRATEGIES, money

pytestmark = pytest.mark.integration


class Stack(Protocol):
    registry_url: str


CENT = Decimal("0.01")
MONEY_FIELDS = ("unit_price", "amount", "total")


def read_record(body: io.BytesIO, schema: Any) -> dict[str, Any]:
    record = fastavro.schemaless_reader(body, schema, None)
    assert isinstance(record, dict)
    return record


def delete_subjects(registry: SchemaRegistryClient, prefix: str) -> None:
    for subject in registry.get_subjects():
        if subject.startswith(prefix):
            for permanent in (False, True):
                with contextlib.suppress(SchemaRegistryError):
                    registry.delete_subject(subject, permanent=permanent)


@pytest.fixture(scope="module")
def registry(stack: Stack) -> SchemaRegistryClient:
    config = Settings.load(schema_registry_url=stack.registry_url).registry_config()
    return make_registry_client(config)


@pytest.fixture(scope="module")
def module_catalog(registry: SchemaRegistryClient) -> Iterator[SchemaCatalog]:
    """The local catalog on topics of this module only (auto-registered on use)."""
    prefix = f"t-serde-{uuid.uuid4().hex[:8]}."
    yield load_catalog().with_topic_prefix(prefix)
    delete_subjects(registry, prefix)


@pytest.fixture(scope="module")
def serializer(registry: SchemaRegistryClient, module_catalog: SchemaCatalog) -> EventSerializer:
    return EventSerializer(registry, catalog=module_catalog)


@pytest.fixture(scope="module")
def deserializer(registry: SchemaRegistryClient) -> EventDeserializer:
    return EventDeserializer(registry)


@pytest.fixture
def prefix(registry: SchemaRegistryClient, unique_name: str) -> Iterator[str]:
    """A topic prefix unique to one test; its subjects are deleted afterwards."""
    name = f"{unique_name}."
    yield name
    delete_subjects(registry, name)


def money_texts(event: DomainEvent) -> list[str]:
    values = [getattr(event, name) for name in MONEY_FIELDS if hasattr(event, name)]
    if isinstance(event, OrderCreated):
        values += [line.unit_price for line in event.lines]
    return [str(value) for value in values]


def test_a_strategy_for_every_event_type() -> None:
    assert set(STRATEGIES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", list(STRATEGIES))
def test_round_trip_is_exact(
    event_type: str, serializer: EventSerializer, deserializer: EventDeserializer
) -> None:
    """typed event → bytes → typed event gives the same event, decimals digit for digit."""

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(event=STRATEGIES[event_type])
    def round_trip(event: DomainEvent) -> None:
        encoded = serializer.encode(event)
        decoded = deserializer.decode(encoded.value).event
        assert type(decoded) is type(event)
        assert decoded == event
        assert decoded.to_json() == event.to_json()
        assert money_texts(decoded) == money_texts(event)
        assert all(
            Decimal(text) == Decimal(text).quantize(CENT)
            and text.split(".")[1:]
            and len(text.split(".")[1]) == 2
            for text in money_texts(decoded)
        )
        assert decoded.occurred_at.tzinfo is UTC
        assert encoded.key == event.key.encode()

    round_trip()


@given(price=money())
@settings(max_examples=50, deadline=None)
def test_decimal_digits_survive_exactly(price: Decimal) -> None:
    """The decimal as typed (0 to 2 decimals, up to 10 integer digits) is what is read
    (one unit: the line's amount is the price, within NUMERIC(12, 2))."""
    event = CartItemAdded(
        cart_id="c", customer_id="u", sku="s", quantity=1, unit_price=price, currency="EUR"
    )
    assert str(event.unit_price) == str(price.quantize(CENT))
    # Schemaless body with the very schema: no float anywhere on the way.
    spec = load_catalog().get("CartItemAdded")
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, spec.parsed, event.to_record())
    buffer.seek(0)
    record = read_record(buffer, spec.parsed)
    assert str(record["unit_price"]) == str(price.quantize(CENT))


# -- wire format ---------------------------------------------------------------------


def sample(event_type: str = "OrderPaid") -> DomainEvent:
    samples: dict[str, DomainEvent] = {
        "OrderPaid": OrderPaid(
            order_id="order-1",
            payment_id="pay-1",
            amount=Decimal("12.30"),
            currency="EUR",
            correlation_id="saga-1",
        ),
        "OrderCreated": OrderCreated(
            order_id="order-2",
            customer_id="cust-1",
            lines=(OrderLine("SKU-1", 2, Decimal("1.25")),),
            total=Decimal("2.50"),
            currency="EUR",
            coupon_code="SAVE10",
        ),
        "CartItemAdded": CartItemAdded(
            cart_id="cart-1",
            customer_id="cust-1",
            sku="SKU-1",
            quantity=1,
            unit_price=Decimal("3"),
            currency="USD",
        ),
    }
    return samples[event_type]


@pytest.mark.parametrize("event_type", ["OrderPaid", "OrderCreated", "CartItemAdded"])
def test_wire_format(
    event_type: str, registry: SchemaRegistryClient, prefix: str, deserializer: EventDeserializer
) -> None:
    catalog = load_catalog().with_topic_prefix(prefix)
    spec = catalog.get(event_type)
    event = sample(event_type)
    encoded = EventSerializer(registry, catalog=catalog).encode(event)

    # Subject: TopicRecordNameStrategy, <topic>-<namespace>.<record>, auto-registered.
    subject = f"{prefix}{spec.topic.removeprefix(prefix)}-{spec.full_name}"
    assert subject == spec.subject()
    assert subject in registry.get_subjects()
    registered = registry.get_latest_version(subject)
    # The registry may hand back an equivalent text (it deduplicates content): the
    # schema is the same once names are resolved.
    registered_raw = json.loads(registered.schema.schema_str or "")
    assert fastavro.parse_schema(registered_raw, _write_hint=False) == fastavro.parse_schema(
        spec.schema, _write_hint=False
    )

    # Framing: magic byte 0, 4-byte big-endian id of the registered schema, Avro body.
    assert encoded.value[0] == MAGIC_BYTE == 0
    (schema_id,) = struct.unpack(">I", encoded.value[1:5])
    assert schema_id == registered.schema_id
    assert schema_id == registry.lookup_schema(subject, Schema(spec.schema_str, "AVRO")).schema_id
    body = io.BytesIO(encoded.value[HEADER.size :])
    record = read_record(body, spec.parsed)
    assert body.tell() == len(encoded.value) - 5
    assert str(record["event_id"]) == event.event_id
    assert type(event).from_record(record) == event

    # Routing and headers.
    assert encoded.topic == spec.topic == f"{prefix}{spec.topic.removeprefix(prefix)}"
    assert encoded.key == event.key.encode("utf-8")
    assert encoded.headers == [(EVENT_TYPE_HEADER, event_type.encode())]
    assert EVENT_TYPE_HEADER == "event_type"
    assert encoded.event_type == event_type

    decoded = deserializer.decode(encoded.value)
    assert decoded.schema_id == schema_id
    assert decoded.event == event


def test_schema_ids_are_fetched_once(
    serializer: EventSerializer, registry: SchemaRegistryClient, deserializer: EventDeserializer
) -> None:
    value = serializer.encode(sample()).value
    (schema_id,) = struct.unpack(">I", value[1:5])
    first = deserializer.writer_schema(schema_id)
    assert deserializer.writer_schema(schema_id) is first
    assert first.event_type == "OrderPaid"
    assert first.full_name == "shopstream.order.OrderPaid"
    assert first.reader is None  # writer schema is our schema: no resolution needed


def test_prepare_resolves_every_type_up_front(serializer: EventSerializer) -> None:
    serializer.prepare()
    serializer.prepare("OrderPaid", "CartItemAdded")


# -- decode errors -------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_bytes(serializer: EventSerializer) -> bytes:
    return serializer.encode(sample()).value


def expect_decode_error(
    deserializer: EventDeserializer, value: bytes | None, reason: str
) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        deserializer.decode(value)
    assert caught.value.reason == reason, str(caught.value)
    assert str(caught.value).startswith(f"{reason}: ")
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "value", [b"\x01\x00\x00\x00\x01\x02", b'{"type":"OrderPaid"}', b"\xff", b"\x7b"]
)
def test_decode_refuses_bytes_without_the_magic_byte(
    deserializer: EventDeserializer, value: bytes
) -> None:
    error = expect_decode_error(deserializer, value, "no-magic-byte")
    assert f"{value[0]:#04x}" in error.detail


@pytest.mark.parametrize("value", [None, b"", b"\x00", b"\x00\x00\x00\x01"])
def test_decode_refuses_too_short_messages(
    deserializer: EventDeserializer, value: bytes | None
) -> None:
    error = expect_decode_error(deserializer, value, "too-short")
    assert error.schema_id is None


def test_decode_refuses_an_unknown_schema_id(
    deserializer: EventDeserializer, good_bytes: bytes
) -> None:
    unknown = 0x7FFFFFF0
    value = HEADER.pack(MAGIC_BYTE, unknown) + good_bytes[HEADER.size :]
    error = expect_decode_error(deserializer, value, "unknown-schema-id")
    assert error.schema_id == unknown
    assert str(unknown) in error.detail


def test_decode_refuses_a_truncated_body(
    deserializer: EventDeserializer, good_bytes: bytes
) -> None:
    (schema_id,) = struct.unpack(">I", good_bytes[1:5])
    for end in range(HEADER.size, len(good_bytes)):
        error = expect_decode_error(deserializer, good_bytes[:end], "truncated-body")
        assert error.schema_id == schema_id


@pytest.mark.parametrize("extra", [b"\x00", b"garbage"])
def test_decode_refuses_trailing_bytes(
    deserializer: EventDeserializer, good_bytes: bytes, extra: bytes
) -> None:
    error = expect_decode_error(deserializer, good_bytes + extra, "trailing-bytes")
    assert f"{len(extra)} bytes" in error.detail


def foreign_id(registry: SchemaRegistryClient, prefix: str, schema: Any) -> int:
    """Register ``schema`` under a test subject; its id."""
    name = schema.get("name", "value") if isinstance(schema, dict) else "value"
    return registry.register_schema(f"{prefix}foreign-{name}", Schema(json.dumps(schema), "AVRO"))


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "record",
            "name": "Foreign",
            "namespace": "test.foreign",
            "fields": [{"name": "x", "type": "long"}],
        },
        # Same short name as one of ours, other namespace: not ours either.
        {
            "type": "record",
            "name": "OrderPaid",
            "namespace": "test.foreign",
            "fields": [{"name": "x", "type": "long"}],
        },
        {
            "type": "enum",
            "name": "Colour",
            "namespace": "test.foreign",
            "symbols": ["RED", "GREEN"],
        },
    ],
    ids=["foreign-record", "same-short-name", "not-a-record"],
)
def test_decode_refuses_an_unknown_record_type(
    deserializer: EventDeserializer,
    registry: SchemaRegistryClient,
    prefix: str,
    schema: dict[str, Any],
) -> None:
    schema["name"] = f"{schema['name']}_{uuid.uuid4().hex[:8]}"  # fresh content, fresh id
    schema_id = foreign_id(registry, prefix, schema)
    value = HEADER.pack(MAGIC_BYTE, schema_id) + b"\x02"
    error = expect_decode_error(deserializer, value, "unknown-record-type")
    assert error.schema_id == schema_id


def test_decode_refuses_a_malformed_body(
    deserializer: EventDeserializer, good_bytes: bytes
) -> None:
    """Bytes that are no OrderPaid (a union branch that does not exist)."""
    body = io.BytesIO(good_bytes[HEADER.size :])
    spec = load_catalog().get("OrderPaid")
    fastavro.schemaless_reader(body, {"type": "string", "logicalType": "uuid"}, None)
    fastavro.schemaless_reader(body, {"type": "long"}, None)
    union_at = body.tell()
    assert spec.schema["fields"][2]["name"] == "correlation_id"
    broken = bytearray(good_bytes)
    broken[HEADER.size + union_at] = 0x0E  # branch 7 of a 2-branch union
    error = expect_decode_error(deserializer, bytes(broken), "bad-body")
    assert error.schema_id is not None


def test_decoded_values_are_validated(
    deserializer: EventDeserializer, serializer: EventSerializer, good_bytes: bytes
) -> None:
    """Well-formed Avro that breaks an event rule is refused by the event itself."""
    spec = load_catalog().get("OrderPaid")
    record = {**sample().to_record(), "currency": "eur", "amount": Decimal("1.00")}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, spec.parsed, record)
    value = good_bytes[: HEADER.size] + buffer.getvalue()
    with pytest.raises(EventValidationError, match=r"OrderPaid\.currency"):
        deserializer.decode(value)


# -- auto-registration off -----------------------------------------------------------


def test_without_auto_registration_the_latest_version_is_the_writer(
    registry: SchemaRegistryClient, prefix: str, deserializer: EventDeserializer
) -> None:
    catalog = load_catalog().with_topic_prefix(prefix)
    spec = catalog.get("OrderCreated")
    v1 = load_event_schema(HISTORY_DIR / "OrderCreated.v1.avsc")
    status = register_one(registry, spec, v1.schema_str)
    serializer = EventSerializer(registry, catalog=catalog, auto_register=False)

    event = sample("OrderCreated")
    assert isinstance(event, OrderCreated)
    encoded = serializer.encode(event)
    assert struct.unpack(">I", encoded.value[1:5])[0] == status.schema_id
    decoded = deserializer.decode(encoded.value)
    assert decoded.schema_id == status.schema_id
    assert decoded.event == OrderCreated(**{**_fields(event), "coupon_code": None})

    # A newer version registered later is not picked up by this serializer (cached) ...
    newer = register_one(registry, spec)
    assert newer.version == 2
    assert serializer.encode(event).value == encoded.value
    # ... but a new one writes with it (with a new client: clients cache "latest" too).
    client = make_registry_client({"url": registry_url(registry)})
    fresh = EventSerializer(client, catalog=catalog, auto_register=False).encode(event)
    assert struct.unpack(">I", fresh.value[1:5])[0] == newer.schema_id
    assert deserializer.decode(fresh.value).event == event
    assert subjects_with(registry, prefix) == [spec.subject()]  # nothing auto-registered


def test_without_auto_registration_an_unregistered_subject_fails_clearly(
    registry: SchemaRegistryClient, prefix: str
) -> None:
    catalog = load_catalog().with_topic_prefix(prefix)
    serializer = EventSerializer(registry, catalog=catalog, auto_register=False)
    subject = catalog.get("OrderPaid").subject()
    for attempt in (lambda: serializer.encode(sample()), lambda: serializer.prepare("OrderPaid")):
        with pytest.raises(SchemaRegistrationError) as caught:
            attempt()
        message = str(caught.value)
        assert subject in message
        assert "auto-registration is off" in message
        assert "shopstream schemas register" in message
        assert "\n" not in message
    assert subjects_with(registry, prefix) == []


def registry_url(registry: SchemaRegistryClient) -> str:
    return str(registry._rest_client.base_urls[0])


def subjects_with(registry: SchemaRegistryClient, prefix: str) -> list[str]:
    return sorted(subject for subject in registry.get_subjects() if subject.startswith(prefix))


def _fields(event: OrderCreated) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.to_record()} | {"lines": event.lines}
