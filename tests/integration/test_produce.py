"""The producers against the real stack: what is sent is what a plain consumer reads.

Every test writes to its own ``<unique>-cart-events`` / ``<unique>-order-events``
(``ProducerOptions.topic_prefix``), reads them back with a plain confluent-kafka
Consumer (``assign`` from the beginning, never joining a group) and decodes with
:class:`EventDeserializer`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from producers.base import (
    STILL_QUEUED,
    DeliveryFailed,
    EventProducer,
    ProducerOptions,
    TopicMissing,
)
from producers.cart import CartProducer
from producers.order import OrderProducer
from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.errors import ConnectionFailed
from shopstream.events import DomainEvent, OrderCreated, OrderLine
from shopstream.simulation.simulator import SimulationConfig, Simulator, invalid_kind
from tests.support.readback import assert_read_back_as_sent, read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}-"


@pytest.fixture
def topics(settings: Settings, prefix: str) -> Iterator[tuple[str, str]]:
    names = (prefix + CART_TOPIC, prefix + ORDER_TOPIC)
    admin = AdminClient(dict(settings.kafka_config()))
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(timeout=30)
    yield names
    for future in admin.delete_topics(list(names), operation_timeout=10).values():
        future.exception(timeout=15)


def split(events: Sequence[DomainEvent]) -> tuple[list[DomainEvent], list[DomainEvent]]:
    carts = [e for e in events if e.event_type.startswith("Cart")]
    return carts, [e for e in events if not e.event_type.startswith("Cart")]


def test_simulated_events_read_back_exactly_in_order_per_key(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    config = SimulationConfig(customers=12, orders=80, seed=21, invalid_rate=0.05)
    events = list(Simulator(config).events())
    assert any(invalid_kind(event) for event in events)
    with EventProducer(settings, ProducerOptions(topic_prefix=prefix)) as producer:
        assert producer.send_all(events) == len(events)
        report = producer.close()
    assert report.ok, report.describe()
    assert (report.sent, report.delivered) == (len(events), len(events))
    carts, orders = split(events)
    assert_read_back_as_sent(carts, read_topic(settings, topics[0], len(carts)))
    assert_read_back_as_sent(orders, read_topic(settings, topics[1], len(orders)))


def test_cart_and_order_producers_send_typed_events(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    with EventProducer(settings, ProducerOptions(topic_prefix=prefix)) as producer:
        carts, orders = CartProducer(producer), OrderProducer(producer)
        cart_events: list[DomainEvent] = [
            carts.add_item(
                cart_id="cart-1",
                customer_id="cust-1",
                sku="BOOK-0004",
                quantity=2,
                unit_price=Decimal("35.00"),
            ),
            carts.add_item(
                cart_id="cart-1",
                customer_id="cust-1",
                sku="GROC-0001",
                quantity=1,
                unit_price=Decimal("4.99"),
                correlation_id="saga-1",
            ),
            carts.remove_item(cart_id="cart-1", customer_id="cust-1", sku="BOOK-0004", quantity=1),
        ]
        checkout = carts.checkout(cart_id="cart-1", customer_id="cust-1")
        cart_events.append(checkout)
        lines = (
            OrderLine("BOOK-0004", 1, Decimal("35.00")),
            OrderLine("GROC-0001", 1, Decimal("4.99")),
        )
        created = orders.create(
            customer_id="cust-1", lines=lines, order_id=checkout.order_id, cart_id="cart-1"
        )
        order_events: list[DomainEvent] = [
            created,
            orders.pay(order_id=created.order_id, amount=created.total),
            orders.confirm(order_id=created.order_id),
            orders.ship(order_id=created.order_id, carrier="DHL", tracking_number="DH1"),
            orders.create(customer_id="cust-2", lines=lines[:1]),
        ]
        order_events.append(orders.cancel(order_id=order_events[-1].key, reason="customer-request"))
        report = producer.close()
    assert report.ok and report.delivered == 10
    assert created.total == Decimal("39.99")
    assert created.currency == "EUR"
    assert_read_back_as_sent(cart_events, read_topic(settings, topics[0], 4))
    assert_read_back_as_sent(order_events, read_topic(settings, topics[1], 6))


def test_tracked_producer_says_where_each_event_landed(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    events = list(Simulator(SimulationConfig(customers=3, orders=3, seed=4)).events())[:12]
    options = ProducerOptions(topic_prefix=prefix, track_offsets=True)
    with EventProducer(settings, options) as producer:
        for event in events:
            producer.send(event)
        locations = [producer.wait_for(event) for event in events]
    read = {(r.topic, r.partition, r.offset): r for t in topics for r in read_topic(settings, t, 0)}
    for event, location in zip(events, locations, strict=True):
        assert location.topic == prefix + (
            CART_TOPIC if event.event_type.startswith("Cart") else ORDER_TOPIC
        )
        assert (location.key, location.event_id, location.event_type) == (
            event.key,
            event.event_id,
            event.event_type,
        )
        assert read[(location.topic, location.partition, location.offset)].event == event


def test_undelivered_events_are_counted_with_their_reason(settings: Settings, prefix: str) -> None:
    nowhere = settings.with_overrides(kafka_bootstrap_servers="127.0.0.1:1")
    options = ProducerOptions(topic_prefix=prefix, config={"message.timeout.ms": 1500})
    producer = EventProducer(nowhere, options).start(check=False)
    events = list(Simulator(SimulationConfig(customers=2, orders=2, seed=1)).events())[:5]
    producer.send_all(events)
    report = producer.close(timeout=20)
    assert (report.sent, report.delivered, report.failed) == (5, 0, 5)
    assert not report.ok
    (reason,) = report.failures
    assert "MSG_TIMED_OUT" in reason or STILL_QUEUED in reason
    with pytest.raises(DeliveryFailed, match=r"^5 of 5 events not delivered: 5 x "):
        report.raise_if_failed()
    assert producer.close() is report  # idempotent


def test_close_never_hangs_and_counts_what_is_still_queued(settings: Settings, prefix: str) -> None:
    nowhere = settings.with_overrides(kafka_bootstrap_servers="127.0.0.1:1")
    options = ProducerOptions(topic_prefix=prefix, config={"message.timeout.ms": 300_000})
    producer = EventProducer(nowhere, options).start(check=False)
    producer.send_all(list(Simulator(SimulationConfig(customers=2, orders=2, seed=1)).events()))
    started = time.monotonic()
    report = producer.close(timeout=1)
    assert time.monotonic() - started < 10
    assert report.delivered == 0
    assert report.failed == report.sent > 0
    assert all(reason.startswith(STILL_QUEUED) for reason in report.failures)


def test_a_message_the_client_refuses_is_counted_as_failed(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    options = ProducerOptions(topic_prefix=prefix, config={"message.max.bytes": 1000})
    lines = tuple(OrderLine(f"SKU-{n:04d}", 1, Decimal("1.00")) for n in range(120))
    big = OrderCreated(
        order_id="o-big", customer_id="c", lines=lines, total=Decimal("120.00"), currency="EUR"
    )
    small = OrderCreated(
        order_id="o-small", customer_id="c", lines=lines[:1], total=Decimal("1.00"), currency="EUR"
    )
    with EventProducer(settings, options) as producer:
        producer.send(big)
        producer.send(small)
        report = producer.close()
    assert (report.sent, report.delivered) == (2, 1)
    assert list(report.failures.values()) == [1]
    assert "MSG_SIZE_TOO_LARGE" in next(iter(report.failures))
    assert report.describe().startswith("1 of 2 events not delivered: 1 x MSG_SIZE_TOO_LARGE")


def test_start_fails_fast_when_a_topic_is_missing(settings: Settings, prefix: str) -> None:
    producer = EventProducer(settings, ProducerOptions(topic_prefix=prefix))
    with pytest.raises(TopicMissing, match=f"topics {prefix}cart-events, {prefix}order-events"):
        producer.start()
    assert producer.close().sent == 0


def test_start_fails_fast_when_the_broker_is_unreachable(settings: Settings) -> None:
    nowhere = settings.with_overrides(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ConnectionFailed, match=r"Kafka broker unreachable at 127\.0\.0\.1:1"):
        EventProducer(nowhere).start()


def test_start_fails_fast_when_the_registry_is_unreachable(settings: Settings) -> None:
    nowhere = settings.with_overrides(schema_registry_url="http://127.0.0.1:1/apis/ccompat/v7")
    with pytest.raises(ConnectionFailed, match="schema registry unreachable"):
        EventProducer(nowhere).start()


def test_the_settings_topic_prefix_is_the_default(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    tenant = settings.with_overrides(shopstream_topic_prefix=prefix)
    producer = EventProducer(tenant)
    assert producer.topics == sorted(topics)
    assert EventProducer(tenant, ProducerOptions(topic_prefix="")).topics == [
        CART_TOPIC,
        ORDER_TOPIC,
    ]
