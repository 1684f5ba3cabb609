"""Produce -> committed-row latency of the ``order-state`` group at a fixed rate.

Runs order-state (PostgreSQL from ``--postgres-url`` or BENCH_POSTGRES_URL, else
SQLite) while producing valid order life cycles at ``--rate`` events/s, and prints
p50/p99 of (commit time - occurred_at). Needs a running stack; everything it makes
(topics, subjects, database) is deleted at the end.

    python bench/latency.py [--rate 1000] [--seconds 10] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import cast

from confluent_kafka import Producer

from consumers.projections.base import Envelope
from consumers.projections.order_state import OrderStateProjection
from consumers.runtime.gc_tuning import tuned_garbage_collector
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import load_catalog
from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import (
    DomainEvent,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
    now_utc,
)
from shopstream.kafka.clients import make_producer
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.logs import configure_logging
from shopstream.prefix import delete_prefixed_data
from shopstream.serde import EventSerializer, make_registry_client

Headers = list[tuple[str, str | bytes | None]]


def life_cycles(orders: int, seed: int = 11) -> Iterator[DomainEvent]:
    """Valid order life cycles, interleaved across orders."""
    rng = random.Random(seed)
    open_orders: list[list[DomainEvent]] = []
    for index in range(orders):
        order_id = f"bench-order-{index}"
        lines = tuple(
            OrderLine(
                f"SKU-{rng.randint(1, 300):04d}",
                rng.randint(1, 3),
                Decimal(rng.randint(199, 19_999)) / 100,
            )
            for _ in range(rng.randint(1, 4))
        )
        total = sum((line.amount for line in lines), Decimal(0))
        steps: list[DomainEvent] = [
            OrderCreated(
                order_id=order_id,
                customer_id=f"cust-{rng.randint(1, 2000)}",
                lines=lines,
                total=total,
                currency="EUR",
            ),
            OrderPaid(order_id=order_id, payment_id=f"pay-{index}", amount=total, currency="EUR"),
        ]
        if rng.random() < 0.1:
            steps.append(OrderCancelled(order_id=order_id, reason="customer request"))
        else:
            steps += [
                OrderConfirmed(order_id=order_id),
                OrderShipped(order_id=order_id, carrier="DHL", tracking_number=f"T{index}"),
            ]
        open_orders.append(steps)
        if len(open_orders) >= 50 or index == orders - 1:
            while open_orders:
                pick = rng.randrange(len(open_orders))
                yield open_orders[pick].pop(0)
                if not open_orders[pick]:
                    open_orders.pop(pick)


def latency(settings: Settings, database_url: str, rate: int, seconds: float) -> list[float]:
    """Produce → committed-row latencies (ms) with order-state running, at ``rate`` ev/s."""
    engine = make_engine(database_url)
    upgrade(engine)
    stop = threading.Event()
    runner = GroupRunner(
        settings,
        OrderStateProjection(),
        engine,
        ConsumerMetrics(),
        RuntimeOptions(batch_size=1000, batch_wait_s=0.05),
        stop,
    )
    latencies: list[float] = []

    def on_commit(applied: list[Envelope], committed_at: float) -> None:
        latencies.extend(
            (committed_at - env.event.occurred_at.timestamp()) * 1000 for env in applied
        )

    runner.add_commit_listener(on_commit)
    runner.start()
    with tuned_garbage_collector():  # as the consumer daemon runs its groups
        worker = threading.Thread(target=runner.run, daemon=True)
        worker.start()
        time.sleep(2.0)  # let the group join before the clock starts
        serializer = EventSerializer(
            make_registry_client(settings.registry_config()),
            catalog=load_catalog().with_topic_prefix(settings.shopstream_topic_prefix),
        )
        producer: Producer = make_producer(settings, **{"linger.ms": 1})
        events = list(life_cycles(int(rate * seconds / 4) + 1, seed=99))[: int(rate * seconds)]
        started = time.perf_counter()
        for index, event in enumerate(events):
            due = started + index / rate
            while (now := time.perf_counter()) < due:
                producer.poll(min(0.001, due - now))
            stamped = replace(event, occurred_at=now_utc())
            encoded = serializer.encode(stamped)
            producer.produce(
                encoded.topic,
                key=encoded.key,
                value=encoded.value,
                headers=cast(Headers, encoded.headers),
            )
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 30
        while len(latencies) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        worker.join(30)
    runner.close()
    engine.dispose()
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="order-state latency benchmark")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as cleanup:
        settings = Settings.load(shopstream_topic_prefix=f"bench-lat-{uuid.uuid4().hex[:8]}-")
        cleanup.callback(delete_prefixed_data, settings)
        create_topics(settings, project_topics(prefix=settings.shopstream_topic_prefix))
        if args.postgres_url:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            cleanup.callback(drop_postgres_database, args.postgres_url, name)
            url, where = create_postgres_database(args.postgres_url, name), "PostgreSQL"
        else:
            tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            url, where = f"sqlite:///{tmp / 'latency.db'}", "SQLite"
        values = latency(settings, url, args.rate, args.seconds)
    if values:
        print(
            f"latency produce -> committed row at {args.rate} ev/s into {where}: "
            f"p50 {statistics.median(values):.0f} ms, p99 {percentile(values, 0.99):.0f} ms "
            f"({len(values)} events)"
        )


if __name__ == "__main__":
    main()
