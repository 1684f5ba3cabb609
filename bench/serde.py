"""Serde cost per event: our EventSerializer/EventDeserializer vs bare fastavro.

Both sides encode and decode the same records with the same parsed schemas in one
run; ours adds the typed events (construction + validation), the Confluent framing
and the cached schema-id lookup. Needs a schema registry (SCHEMA_REGISTRY_URL, or
`shopstream stack up`). Prints microseconds per event and the ratio ours / bare.

    python bench/serde.py [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import fastavro

from schemas import load_catalog
from shopstream.config import Settings
from shopstream.events import (
    CartItemAdded,
    DomainEvent,
    OrderCancelled,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)
from shopstream.serde import HEADER, EventDeserializer, EventSerializer, make_registry_client


def sample_events(count: int, seed: int = 7) -> list[DomainEvent]:
    rng = random.Random(seed)
    events: list[DomainEvent] = []
    for index in range(count):
        kind = index % 5
        order_id = f"order-{index // 5}"
        price = Decimal(rng.randint(100, 99_999)) / 100
        if kind == 0:
            lines = tuple(
                OrderLine(
                    sku=f"SKU-{rng.randint(1, 500):04d}",
                    quantity=rng.randint(1, 4),
                    unit_price=Decimal(rng.randint(100, 9_999)) / 100,
                )
                for _ in range(rng.randint(1, 4))
            )
            total = sum((line.amount for line in lines), Decimal(0))
            events.append(
                OrderCreated(
                    order_id=order_id,
                    customer_id="cust-1",
                    lines=lines,
                    total=total,
                    currency="EUR",
                )
            )
        elif kind == 1:
            events.append(
                OrderPaid(
                    order_id=order_id, payment_id=f"pay-{index}", amount=price, currency="EUR"
                )
            )
        elif kind == 2:
            events.append(
                CartItemAdded(
                    cart_id=f"cart-{index}",
                    customer_id="cust-1",
                    sku="SKU-0001",
                    quantity=2,
                    unit_price=price,
                    currency="EUR",
                )
            )
        elif kind == 3:
            events.append(OrderShipped(order_id=order_id, carrier="DHL", tracking_number="T1"))
        else:
            events.append(OrderCancelled(order_id=order_id, reason="customer request"))
    return events


def best_of(repeat: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = Settings.load()
    registry = make_registry_client(settings.registry_config())
    serializer = EventSerializer(registry)
    deserializer = EventDeserializer(registry)
    catalog = load_catalog()
    events = sample_events(args.events)
    serializer.prepare()

    parsed = {spec.name: spec.parsed for spec in catalog}
    records: list[tuple[Any, dict[str, Any]]] = [
        (parsed[e.event_type], e.to_record()) for e in events
    ]
    encoded = [serializer.encode(e).value for e in events]
    bodies = [
        (parsed[e.event_type], value[HEADER.size :])
        for e, value in zip(events, encoded, strict=True)
    ]

    def bare_encode() -> None:
        for schema, record in records:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, schema, record)
            buffer.getvalue()

    def bare_decode() -> None:
        for schema, body in bodies:
            fastavro.schemaless_reader(io.BytesIO(body), schema, None)

    def our_encode() -> None:
        for event in events:
            serializer.encode(event)

    def our_decode() -> None:
        for value in encoded:
            deserializer.decode(value)

    n = len(events)
    results = {
        name: best_of(args.repeat, work) / n * 1e6
        for name, work in [
            ("bare encode", bare_encode),
            ("bare decode", bare_decode),
            ("ours encode", our_encode),
            ("ours decode", our_decode),
        ]
    }
    for name, micros in results.items():
        print(f"{name:12s} {micros:8.2f} us/event")
    bare = results["bare encode"] + results["bare decode"]
    ours = results["ours encode"] + results["ours decode"]
    print(f"encode ratio ours/bare: {results['ours encode'] / results['bare encode']:.2f}")
    print(f"decode ratio ours/bare: {results['ours decode'] / results['bare decode']:.2f}")
    print(
        f"encode+decode: bare {bare:.2f} us, ours {ours:.2f} us, "
        f"ratio {ours / bare:.2f} (target <= 2.0)"
    )


if __name__ == "__main__":
    main()
