"""Poison events on the real stack: raw Avro the schema allows, mixed with good events
across partitions, refused by the database. The group keeps running, every good event
is applied (the tables equal the reference model of the good events), and exactly the
poison events are dead-lettered, as ``db-rejected`` with the database's code and message.

The trigger's refusal (a customer id the test's trigger refuses) cannot be foreseen by
any validation, on SQLite and PostgreSQL alike. The others are values beyond the
columns that only PostgreSQL refuses today (a text longer than its column, a NUL in a
text) and sums beyond NUMERIC(12,2) (SQLite: beyond its 64-bit integer cents). Event
validation may come to refuse some of those when they are decoded: they are then
dead-lettered as ``invalid-event``, which this test accepts for them (never for the
trigger's refusals).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine

from consumers.projections import projection_for
from consumers.runtime import dlq_writer as dlq
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.events import DomainEvent
from shopstream.kafka.clients import make_producer
from tests.support.faults import simulated_events
from tests.support.pipeline import create_project_topics, produce, read_all
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger, raw_avro
from tests.support.reference import (
    dump_group,
    expected_for,
    processed_outcomes,
    table_differences,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True),
]

#: Poisons whose refusal validation may take over (dead-lettered as invalid-event then).
LIMIT_REASONS = {"db-rejected", "invalid-event"}


@dataclass(frozen=True)
class Poison:
    event_id: str
    topic: str
    strict: bool
    """True: must be dead-lettered as db-rejected (the trigger's refusals)."""


def moment() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def cart_add(cart: str, customer: str, sku: str, quantity: int, price: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": moment(),
        "correlation_id": None,
        "cart_id": cart,
        "customer_id": customer,
        "sku": sku,
        "quantity": quantity,
        "unit_price": Decimal(price),
        "currency": "EUR",
    }


def order_created(order: str, customer: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": moment(),
        "correlation_id": None,
        "order_id": order,
        "customer_id": customer,
        "cart_id": None,
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": Decimal("3.00")}],
        "total": Decimal("3.00"),
        "currency": "EUR",
        "coupon_code": None,
    }


def send_raw(
    settings: Settings, topic: str, event_type: str, key: str, record: dict[str, Any]
) -> None:
    producer: Producer = make_producer(settings)
    producer.produce(
        settings.topic(topic),
        key=key.encode(),
        value=raw_avro(settings, event_type, record),
        headers=[("event_type", event_type.encode())],
    )
    assert producer.flush(30) == 0


def poison_events(settings: Settings, postgres: bool) -> list[Poison]:
    """Send the poison events (each on an aggregate of its own); return them."""
    sent: list[Poison] = []

    def cart(
        name: str,
        strict: bool,
        sku: str = "SKU-1",
        quantity: int = 1,
        price: str = "1.00",
        customer: str = "poison-customer",
    ) -> None:
        record = cart_add(f"poison-cart-{name}", customer, sku, quantity, price)
        send_raw(settings, CART_TOPIC, "CartItemAdded", record["cart_id"], record)
        sent.append(Poison(record["event_id"], CART_TOPIC, strict))

    def order(name: str, strict: bool, customer: str = "poison-customer") -> None:
        record = order_created(f"poison-order-{name}", customer)
        send_raw(settings, ORDER_TOPIC, "OrderCreated", record["order_id"], record)
        sent.append(Poison(record["event_id"], ORDER_TOPIC, strict))

    for index in range(3):
        cart(f"trigger-{index}", True, customer=REFUSED_CUSTOMER)
        order(f"trigger-{index}", True, customer=REFUSED_CUSTOMER)
    cart("overflow", False, quantity=2**31 - 1, price="9999999999.99")
    if postgres:
        cart("long-sku", False, sku="S" * 10_000)
        cart("nul", False, sku="SKU\x00NUL")
        order("long-customer", False, customer="C" * 10_000)
    return sent


def run_group(settings: Settings, engine: Engine, group: str) -> GroupRunner:
    runner = GroupRunner(
        settings,
        projection_for(group),
        engine,
        ConsumerMetrics(),
        RuntimeOptions(until_caught_up=True, batch_size=64, batch_wait_s=0.1),
        threading.Event(),
    )
    runner.start()
    try:
        runner.run()
    finally:
        runner.close()
    return runner


def test_poison_events_are_dead_lettered_and_every_good_event_applied(
    settings: Settings, engine: Engine, database_url: str, unique_name: str
) -> None:
    prefixed = settings.model_copy(
        update={"shopstream_topic_prefix": f"{unique_name}-", "database_url": database_url}
    )
    create_project_topics(prefixed, partitions=3)
    for table in ("carts", "orders", "sales_orders"):
        install_refusal_trigger(engine, table)
    good: list[DomainEvent] = simulated_events(orders=40, customers=15, seed=7, invalid_rate=0)
    half = len(good) // 2
    produce(prefixed, good[:half])
    poison = poison_events(prefixed, engine.dialect.name == "postgresql")
    produce(prefixed, good[half:])

    for group in ("cart-projection", "order-state", "sales-projection"):
        runner = run_group(prefixed, engine, group)
        assert runner.caught_up, group
        topic = CART_TOPIC if group == "cart-projection" else ORDER_TOPIC
        expected = expected_for(group, good)
        problems = table_differences(dump_group(engine, group), expected.tables)
        assert not problems, f"{group}: {problems}"
        outcomes = processed_outcomes(engine, group)
        ours = [p for p in poison if p.topic == topic]
        for p in ours:
            assert outcomes.pop(p.event_id, "dead-lettered") == "dead-lettered", group
        assert outcomes == expected.outcomes, group

        letters = [
            m
            for m in read_all(prefixed, dlq_topic(prefixed.topic(topic)))
            if _headers(m)[dlq.GROUP] == group
        ]
        by_id = {_headers(m)[dlq.EVENT_ID]: _headers(m) for m in letters if _has_id(m)}
        assert len(letters) == len(ours) + len(expected.rejected), group
        assert len(by_id) == sum(1 for m in letters if _has_id(m)), f"{group}: a letter twice"
        for p in ours:
            headers = by_id.get(p.event_id) or _undecodable(letters, p)
            reason = headers[dlq.REASON]
            assert reason == "db-rejected" if p.strict else reason in LIMIT_REASONS, (p, headers)
            if reason == "db-rejected":
                assert headers[dlq.DB_CODE] and headers[dlq.DB_MESSAGE], headers
                assert "\n" not in headers[dlq.DB_MESSAGE]


def _headers(message: Any) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in message.headers() or []}


def _has_id(message: Any) -> bool:
    return dlq.EVENT_ID in _headers(message)


def _undecodable(letters: list[Any], poison: Poison) -> dict[str, str]:
    """The letter of a poison event refused when decoded (no event id header)."""
    for message in letters:
        headers = _headers(message)
        if dlq.EVENT_ID not in headers and poison.event_id.encode() in (message.value() or b""):
            return headers
    raise AssertionError(f"no dead letter for {poison}")
