"""Schema evolution under BACKWARD_TRANSITIVE, for real, against the registry.

OrderCreated v1 (``schemas/avro/history/OrderCreated.v1.avsc``) and the current v2
(which adds the optional ``coupon_code``) are registered under a subject unique to
the test; an old consumer reads events of the new writer and a new consumer reads
events of the old writer, through our EventSerializer/EventDeserializer. A schema
that would break a reader is refused with a one-line reason, by the library and by
``shopstream schemas check``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import HISTORY_DIR, EventSchema, SchemaCatalog, load_catalog, load_event_schema
from shopstream.config import Settings
from shopstream.events import OrderCreated, OrderLine
from shopstream.registry.admin import (
    COMPATIBILITY,
    IncompatibleSchema,
    check_one,
    register_all,
    register_one,
)
from shopstream.serde import EventDeserializer, EventSerializer, make_registry_client

pytestmark = pytest.mark.integration

SHOPSTREAM = Path(sys.executable).parent / "shopstream"


class Stack(Protocol):
    registry_url: str


@pytest.fixture(scope="module")
def registry_url(stack: Stack) -> str:
    return stack.registry_url


@pytest.fixture(scope="module")
def registry(registry_url: str) -> SchemaRegistryClient:
    return make_registry_client(Settings.load(schema_registry_url=registry_url).registry_config())


@pytest.fixture
def catalog(registry: SchemaRegistryClient, unique_name: str) -> Iterator[SchemaCatalog]:
    """The local catalog under topics (so subjects) of this test only; deleted after."""
    prefix = f"{unique_name}."
    yield load_catalog().with_topic_prefix(prefix)
    for subject in registry.get_subjects():
        if subject.startswith(prefix):
            for permanent in (False, True):
                with contextlib.suppress(SchemaRegistryError):
                    registry.delete_subject(subject, permanent=permanent)


V1 = load_event_schema(HISTORY_DIR / "OrderCreated.v1.avsc")


def with_schema(catalog: SchemaCatalog, spec: EventSchema) -> SchemaCatalog:
    """``catalog`` with the schema of one event type swapped (same topic)."""
    own = catalog.get(spec.name)
    return SchemaCatalog(
        by_name={**catalog.by_name, spec.name: dataclasses.replace(spec, topic=own.topic)}
    )


def variant(change: Any) -> str:
    """The current OrderCreated schema, changed by ``change(fields)``, as text."""
    schema = json.loads(load_catalog().get("OrderCreated").schema_str)
    change(schema["fields"])
    return json.dumps(schema)


def add_required_field(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "loyalty_tier", "type": "string", "doc": "No default: breaks."})


def order_id_as_long(fields: list[dict[str, Any]]) -> None:
    next(f for f in fields if f["name"] == "order_id")["type"] = "long"


def without_cart_id(fields: list[dict[str, Any]]) -> None:
    fields[:] = [f for f in fields if f["name"] != "cart_id"]


def cart_id_as_long(fields: list[dict[str, Any]]) -> None:
    next(f for f in fields if f["name"] == "cart_id")["type"] = ["null", "long"]


def order(coupon_code: str | None = "SAVE10") -> OrderCreated:
    return OrderCreated(
        order_id="order-42",
        customer_id="cust-7",
        cart_id="cart-3",
        lines=(OrderLine("SKU-1", 2, Decimal("19.99")), OrderLine("SKU-2", 1, Decimal("0.02"))),
        total=Decimal("40.00"),
        currency="EUR",
        coupon_code=coupon_code,
        correlation_id="saga-1",
    )


def register_v1_then_v2(registry: SchemaRegistryClient, catalog: SchemaCatalog) -> tuple[int, int]:
    spec = catalog.get("OrderCreated")
    first = register_one(registry, spec, V1.schema_str)
    second = register_one(registry, spec)
    assert (first.version, second.version) == (1, 2)
    assert first.schema_id is not None and second.schema_id is not None
    assert first.schema_id != second.schema_id
    assert registry.get_versions(spec.subject()) == [1, 2]
    assert registry.get_compatibility(spec.subject()) == COMPATIBILITY == "BACKWARD_TRANSITIVE"
    return first.schema_id, second.schema_id


def test_v1_then_v2_are_accepted_and_v2_checks_compatible(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    register_v1_then_v2(registry, catalog)
    spec = catalog.get("OrderCreated")
    status = check_one(registry, spec)
    assert (status.outcome, status.version, status.compatibility) == (
        "compatible",
        2,
        "BACKWARD_TRANSITIVE",
    )
    assert check_one(registry, spec, V1.schema_str).outcome == "compatible"
    assert check_one(registry, catalog.get("OrderPaid")).outcome == "new subject"


def test_old_reader_reads_events_of_the_new_writer(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    _, v2_id = register_v1_then_v2(registry, catalog)
    writer = EventSerializer(registry, catalog=catalog, auto_register=False)  # latest: v2
    event = order(coupon_code="SAVE10")
    value = writer.encode(event).value
    assert int.from_bytes(value[1:5], "big") == v2_id

    old_reader = EventDeserializer(registry, catalog=with_schema(load_catalog(), V1))
    decoded = old_reader.decode(value)
    assert decoded.schema_id == v2_id
    assert old_reader.writer_schema(v2_id).reader is not None  # resolved v2 → v1
    assert decoded.event == dataclasses.replace(event, coupon_code=None)  # v1 knows no coupon
    assert isinstance(decoded.event, OrderCreated)
    assert str(decoded.event.total) == "40.00"

    new_reader = EventDeserializer(registry)
    assert new_reader.decode(value).event == event


def test_new_reader_reads_events_of_the_old_writer(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    v1_id, _ = register_v1_then_v2(registry, catalog)
    old_writer = EventSerializer(registry, catalog=with_schema(catalog, V1))
    event = order(coupon_code="SAVE10")
    value = old_writer.encode(event).value
    assert int.from_bytes(value[1:5], "big") == v1_id  # v1 was already there: same id
    assert registry.get_versions(catalog.get("OrderCreated").subject()) == [1, 2]

    new_reader = EventDeserializer(registry)  # the current catalog: v2
    decoded = new_reader.decode(value)
    assert decoded.schema_id == v1_id
    assert new_reader.writer_schema(v1_id).reader is not None  # resolved v1 → v2
    assert isinstance(decoded.event, OrderCreated)
    assert decoded.event.coupon_code is None  # the default of the field v1 lacks
    assert decoded.event == dataclasses.replace(event, coupon_code=None)


def test_a_required_field_without_default_is_refused(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    register_v1_then_v2(registry, catalog)
    spec = catalog.get("OrderCreated")
    candidate = variant(add_required_field)
    for attempt in (check_one, register_one):
        with pytest.raises(IncompatibleSchema) as caught:
            attempt(registry, spec, candidate)
        message = caught.value.message
        assert "\n" not in message
        assert message.startswith(f"{spec.subject()}: ")
        assert "BACKWARD_TRANSITIVE" in message
        assert "'loyalty_tier' has no default" in message, message
        assert caught.value.exit_code != 0
    assert registry.get_versions(spec.subject()) == [1, 2]  # nothing registered


def test_a_changed_type_is_refused(registry: SchemaRegistryClient, catalog: SchemaCatalog) -> None:
    register_v1_then_v2(registry, catalog)
    spec = catalog.get("OrderCreated")
    candidate = variant(order_id_as_long)
    for attempt in (check_one, register_one):
        with pytest.raises(IncompatibleSchema) as caught:
            attempt(registry, spec, candidate)
        message = caught.value.message
        assert "\n" not in message
        assert message.startswith(f"{spec.subject()}: ")
        assert "field 'order_id': string cannot be read as long" in message, message
    assert registry.get_versions(spec.subject()) == [1, 2]


def test_compatibility_is_transitive(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    """A schema compatible with the latest version but not with an older one is refused."""
    spec = catalog.get("OrderCreated")
    register_one(registry, spec, V1.schema_str)  # cart_id: string
    register_one(registry, spec, variant(without_cart_id))  # no cart_id: compatible
    candidate = variant(cart_id_as_long)  # cart_id: long again, fine vs the latest only
    assert registry.test_compatibility(spec.subject(), Schema(candidate, "AVRO"))  # latest alone
    for attempt in (check_one, register_one):
        with pytest.raises(IncompatibleSchema) as caught:
            attempt(registry, spec, candidate)
        message = caught.value.message
        assert "version 1" in message, message
        assert "'cart_id'" in message, message
    assert registry.get_versions(spec.subject()) == [1, 2]


def test_register_all_and_check_all_on_fresh_subjects(
    registry: SchemaRegistryClient, catalog: SchemaCatalog
) -> None:
    assert {status.outcome for status in (check_one(registry, spec) for spec in catalog)} == {
        "new subject"
    }
    registered = register_all(registry, catalog)
    assert [status.subject for status in registered] == [spec.subject() for spec in catalog]
    assert {(status.version, status.compatibility) for status in registered} == {
        (1, "BACKWARD_TRANSITIVE")
    }
    assert {status.outcome for status in (check_one(registry, spec) for spec in catalog)} == {
        "compatible"
    }
    again = register_all(registry, catalog)  # idempotent
    assert [status.schema_id for status in again] == [status.schema_id for status in registered]


# -- the CLI -------------------------------------------------------------------------


def shopstream(registry_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHOPSTREAM), "--registry-url", registry_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_check_fails_on_an_incompatible_registered_version(
    registry: SchemaRegistryClient, registry_url: str, catalog: SchemaCatalog
) -> None:
    spec = catalog.get("OrderCreated")
    prefix = spec.topic.removesuffix("order-events")
    register_one(registry, spec, variant(order_id_as_long))  # what an old producer wrote

    result = shopstream(registry_url, "schemas", "check", "--topic-prefix", prefix)
    assert result.returncode == 1, result
    errors = result.stderr.splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {spec.subject()}: "), errors[0]
    assert "order_id" in errors[0]
    assert "Traceback" not in result.stderr
    assert "INCOMPATIBLE" in result.stdout
    assert catalog.get("OrderPaid").subject() in result.stdout  # every subject was checked


def test_cli_register_then_check(registry_url: str, catalog: SchemaCatalog) -> None:
    prefix = catalog.get("OrderCreated").topic.removesuffix("order-events")
    registered = shopstream(registry_url, "schemas", "register", "--topic-prefix", prefix)
    assert registered.returncode == 0, registered.stderr
    checked = shopstream(registry_url, "schemas", "check", "--topic-prefix", prefix)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("compatible") == len(catalog)
    for spec in catalog:
        assert spec.subject() in registered.stdout


def test_cli_refuses_a_bad_topic_prefix(registry_url: str) -> None:
    result = shopstream(registry_url, "schemas", "check", "--topic-prefix", "no spaces")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --topic-prefix")
