"""The Avro contracts in ``schemas/`` and their loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from schemas import (
    AVRO_DIR,
    CART_TOPIC,
    HISTORY_DIR,
    ORDER_TOPIC,
    EventSchema,
    dlq_topic,
    load_catalog,
    load_event_schema,
)
from shopstream.events import EVENT_TYPES, CartEvent, OrderEvent

CATALOG = load_catalog()
SPECS = list(CATALOG)
EXPECTED_ROUTES = {
    "CartItemAdded": (CART_TOPIC, "cart_id"),
    "CartItemRemoved": (CART_TOPIC, "cart_id"),
    "CartCheckedOut": (CART_TOPIC, "cart_id"),
    "OrderCreated": (ORDER_TOPIC, "order_id"),
    "OrderPaid": (ORDER_TOPIC, "order_id"),
    "OrderConfirmed": (ORDER_TOPIC, "order_id"),
    "OrderShipped": (ORDER_TOPIC, "order_id"),
    "OrderCancelled": (ORDER_TOPIC, "order_id"),
}
MONEY_FIELDS = {"unit_price", "total", "amount"}
DECIMAL_12_2 = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}


def spec_id(spec: EventSchema) -> str:
    return spec.name


def walk_fields(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of a record schema, nested records (array items too) included."""
    for field in schema["fields"]:
        name = f"{path}{field['name']}"
        yield name, field
        for nested in walk_types(field["type"]):
            if isinstance(nested, dict) and nested.get("type") == "record":
                yield from walk_fields(nested, f"{name}[].")


def walk_types(schema: Any) -> Iterator[Any]:
    """Every type inside ``schema`` (unions, arrays, maps), without entering records."""
    yield schema
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_types(branch)
    elif isinstance(schema, dict):
        if isinstance(schema.get("type"), dict | list):
            yield from walk_types(schema["type"])
        for key in ("items", "values"):
            if key in schema:
                yield from walk_types(schema[key])


def field(spec: EventSchema, name: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [f for f in spec.schema["fields"] if f["name"] == name]
    assert len(matches) == 1, f"{spec.name} has no field {name}"
    return matches[0]


def test_every_event_type_has_a_schema() -> None:
    assert {spec.name for spec in CATALOG} == set(EVENT_TYPES) == set(EXPECTED_ROUTES)
    assert len(CATALOG) == len(EVENT_TYPES)


def test_history_is_not_part_of_the_catalog() -> None:
    assert HISTORY_DIR.parent == AVRO_DIR
    assert any(HISTORY_DIR.glob("*.avsc"))
    assert all("history" not in spec.schema.get("doc", "").lower() for spec in CATALOG)
    assert "coupon_code" in {f["name"] for f in CATALOG.get("OrderCreated").schema["fields"]}


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_topic_key_and_subject(spec: EventSchema) -> None:
    assert (spec.topic, spec.key_field) == EXPECTED_ROUTES[spec.name]
    namespace = "shopstream.cart" if spec.topic == CART_TOPIC else "shopstream.order"
    assert spec.full_name == f"{namespace}.{spec.name}"
    assert spec.schema["namespace"] == namespace
    # TopicRecordNameStrategy: several record types share a topic.
    assert spec.subject() == f"{spec.topic}-{spec.full_name}"
    assert field(spec, spec.key_field)["type"] == "string"
    event_class = EVENT_TYPES[spec.name]
    base = CartEvent if spec.topic == CART_TOPIC else OrderEvent
    assert issubclass(event_class, base)
    assert event_class.aggregate_field == spec.key_field


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_fields_match_the_typed_event(spec: EventSchema) -> None:
    avro_fields = {f["name"] for f in spec.schema["fields"]}
    class_fields = {f.name for f in dataclasses.fields(EVENT_TYPES[spec.name])}
    assert avro_fields == class_fields


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_record_and_field_is_documented(spec: EventSchema) -> None:
    assert spec.schema.get("doc", "").strip(), f"{spec.name} has no doc"
    for name, avro_field in walk_fields(spec.schema):
        assert avro_field.get("doc", "").strip(), f"{spec.name}.{name} has no doc"
        for nested in walk_types(avro_field["type"]):
            if isinstance(nested, dict) and nested.get("type") == "record":
                assert nested.get("doc", "").strip(), f"record in {spec.name}.{name} has no doc"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_money_is_decimal_12_2_never_float(spec: EventSchema) -> None:
    for name, avro_field in walk_fields(spec.schema):
        for nested in walk_types(avro_field["type"]):
            kind = nested.get("type") if isinstance(nested, dict) else nested
            assert kind not in ("float", "double"), f"{spec.name}.{name} is {kind}"
        if name.rsplit(".", 1)[-1] in MONEY_FIELDS:
            assert avro_field["type"] == DECIMAL_12_2, f"{spec.name}.{name}"
    has_money = any(name.rsplit(".", 1)[-1] in MONEY_FIELDS for name, _ in walk_fields(spec.schema))
    if has_money:
        currency = field(spec, "currency")
        assert currency["type"] == "string"
        assert "three upper-case letters" in currency["doc"]


def test_money_fields_are_where_expected() -> None:
    money = {
        spec.name: sorted(
            name for name, _ in walk_fields(spec.schema) if name.rsplit(".", 1)[-1] in MONEY_FIELDS
        )
        for spec in CATALOG
    }
    assert money == {
        "CartItemAdded": ["unit_price"],
        "CartItemRemoved": [],
        "CartCheckedOut": [],
        "OrderCreated": ["lines[].unit_price", "total"],
        "OrderPaid": ["amount"],
        "OrderConfirmed": [],
        "OrderShipped": [],
        "OrderCancelled": [],
    }


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_event_has_id_time_and_optional_correlation(spec: EventSchema) -> None:
    names = [f["name"] for f in spec.schema["fields"]]
    assert names[:3] == ["event_id", "occurred_at", "correlation_id"]
    assert field(spec, "event_id")["type"] == {"type": "string", "logicalType": "uuid"}
    assert field(spec, "occurred_at")["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    correlation = field(spec, "correlation_id")
    assert correlation["type"] == ["null", "string"]
    assert "default" in correlation
    assert correlation["default"] is None


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_quantities_are_ints(spec: EventSchema) -> None:
    for name, avro_field in walk_fields(spec.schema):
        if name.rsplit(".", 1)[-1] == "quantity":
            assert avro_field["type"] == "int"
            assert "positive" in avro_field["doc"]


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_optional_fields_are_null_unions_with_null_default(spec: EventSchema) -> None:
    for name, avro_field in walk_fields(spec.schema):
        if isinstance(avro_field["type"], list):
            assert avro_field["type"][0] == "null", f"{spec.name}.{name}"
            assert "default" in avro_field and avro_field["default"] is None


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_parsed_schema_and_schema_str(spec: EventSchema) -> None:
    assert spec.parsed["name"] == spec.full_name
    assert " " not in spec.schema_str.split('"doc"')[0]  # compact JSON
    assert (
        load_event_schema(AVRO_DIR / spec.schema["namespace"].split(".")[1] / f"{spec.name}.avsc")
        == spec
    )


def test_catalog_lookups() -> None:
    assert CATALOG.get("OrderCreated") is CATALOG.get("shopstream.order.OrderCreated")
    with pytest.raises(KeyError):
        CATALOG.get("OrderExploded")
    assert CATALOG.topics == [CART_TOPIC, ORDER_TOPIC]
    assert [spec.name for spec in (s for s in CATALOG if s.topic == CART_TOPIC)] == [
        "CartCheckedOut",
        "CartItemAdded",
        "CartItemRemoved",
    ]
    assert len([s for s in CATALOG if s.topic == ORDER_TOPIC]) == 5
    assert load_catalog() is CATALOG  # parsed once


def test_dlq_topic() -> None:
    assert dlq_topic(ORDER_TOPIC) == "order-events.dlq"
    assert dlq_topic(CART_TOPIC) == "cart-events.dlq"


def test_topic_prefix_gives_isolated_topics_and_subjects() -> None:
    prefixed = CATALOG.with_topic_prefix("t-1.")
    assert CATALOG.with_topic_prefix("") is CATALOG
    assert prefixed.topics == ["t-1.cart-events", "t-1.order-events"]
    spec = prefixed.get("OrderPaid")
    assert spec.subject() == "t-1.order-events-shopstream.order.OrderPaid"
    assert (spec.full_name, spec.key_field, spec.parsed) == (
        CATALOG.get("OrderPaid").full_name,
        "order_id",
        CATALOG.get("OrderPaid").parsed,
    )
    assert CATALOG.get("OrderPaid").topic == ORDER_TOPIC  # the original is untouched
    for bad in ("a b", "x/y", "é"):
        with pytest.raises(ValueError, match="topic prefix"):
            CATALOG.with_topic_prefix(bad)


def test_order_created_v1_is_v2_without_coupon_code() -> None:
    v1 = load_event_schema(HISTORY_DIR / "OrderCreated.v1.avsc")
    v2 = CATALOG.get("OrderCreated")
    assert (v1.name, v1.full_name, v1.topic, v1.key_field) == (
        v2.name,
        v2.full_name,
        v2.topic,
        v2.key_field,
    )
    v2_fields = [f for f in v2.schema["fields"] if f["name"] != "coupon_code"]
    assert v1.schema["fields"] == v2_fields
    coupon = field(v2, "coupon_code")
    assert coupon["type"] == ["null", "string"]
    assert coupon["default"] is None
