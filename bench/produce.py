"""Producer throughput: our EventProducer vs raw confluent-kafka, in one run.

All three paths send the same simulated events to the same fresh topics (6
partitions, created for the run and deleted after) with the same producer config
(:func:`shopstream.kafka.clients.producer_config`: idempotent, acks=all, lz4), the same keys
and the same ``event_type`` headers, and each is timed from the first send until
every event is acknowledged (flush):

- raw:          ``Producer.produce`` of pre-encoded Confluent-framed Avro bytes;
- ours, bytes:  ``EventProducer.send_encoded`` of the same bytes (our producer's
                own cost: routing, counting, delivery reports, BufferError handling);
- ours, events: ``EventProducer.send`` of the typed events (Avro encoding included).

Then ``shopstream simulate --seed 7 --orders 30000 --customers 20000`` itself (the CLI, as
a subprocess: simulation, encoding, producing, progress bar) on fresh topics: the events/s
its summary prints, and the simulator alone (the same events, generated without encoding
or Kafka).

Needs the stack (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL). The three producer paths
run interleaved, one round after the other, and each ratio is taken within its round;
every figure is the median of --repeat rounds with the range. 2 shared cores: absolute
figures move with the machine's load; trust the ratios within one run.

    python bench/produce.py [--events 200000] [--repeat 3] [--simulate-orders 30000]
                            [--simulate-customers 20000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from typing import cast

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from producers.base import EventProducer, ProducerOptions
from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.events import DomainEvent
from shopstream.kafka.clients import make_admin, producer_config
from shopstream.prefix import delete_prefixed_data
from shopstream.serde import EncodedEvent
from shopstream.simulation.simulator import SimulationConfig, Simulator

PARTITIONS = 6
WARM_UP = 2_000
TARGET_RATIO = 0.6
"""Pre-encoded bytes through our producer, against raw."""
TARGET_TYPED_RATIO = 0.5
"""Typed events (Avro encoding included), against raw."""
TARGET_SIMULATE = 30_000
"""``shopstream simulate`` events/s."""
SIMULATE = (sys.executable, "-m", "shopstream", "simulate")
Headers = list[tuple[str, str | bytes | None]]


def simulated(count: int) -> list[DomainEvent]:
    config = SimulationConfig(customers=500, orders=None, seed=2026)
    return list(islice(Simulator(config).events(), count))


def create_topics(settings: Settings, prefix: str) -> list[str]:
    names = [prefix + CART_TOPIC, prefix + ORDER_TOPIC]
    admin = make_admin(settings)
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(timeout=30)
    return names


def raw_run(settings: Settings, encoded: Sequence[EncodedEvent]) -> float:
    """Seconds for raw confluent-kafka to produce and flush ``encoded``."""
    producer = Producer(producer_config(settings))
    _raw_send(producer, encoded[:WARM_UP])
    producer.flush(60)
    started = time.perf_counter()
    _raw_send(producer, encoded)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left:
        raise SystemExit(f"raw: {left} events not delivered")
    return elapsed


def _raw_send(producer: Producer, encoded: Sequence[EncodedEvent]) -> None:
    produce, poll = producer.produce, producer.poll
    for item in encoded:
        while True:
            try:
                produce(item.topic, item.value, item.key, headers=cast(Headers, item.headers))
                break
            except BufferError:
                poll(0.05)
        poll(0)


def ours_run(
    settings: Settings,
    prefix: str,
    warm_up: Callable[[EventProducer], None],
    work: Callable[[EventProducer], None],
) -> float:
    """Seconds for an EventProducer to do ``work`` and deliver everything."""
    producer = EventProducer(settings, ProducerOptions(topic_prefix=prefix)).start()
    warm_up(producer)
    producer.flush(60)
    started = time.perf_counter()
    work(producer)
    producer.flush(120)
    elapsed = time.perf_counter() - started
    report = producer.close()
    if not report.ok:
        raise SystemExit(f"ours: {report.describe()}")
    return elapsed


def sending_bytes(items: Sequence[EncodedEvent]) -> Callable[[EventProducer], None]:
    def send(producer: EventProducer) -> None:
        for item in items:
            producer.send_encoded(item)

    return send


def sending_events(events: Sequence[DomainEvent]) -> Callable[[EventProducer], None]:
    def send(producer: EventProducer) -> None:
        producer.send_all(events)

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--simulate-orders", type=int, default=30_000)
    parser.add_argument("--simulate-customers", type=int, default=20_000)
    args = parser.parse_args()

    settings = Settings.load()
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    events = simulated(args.events)
    create_topics(settings, prefix)
    try:
        serializer = EventProducer(settings, ProducerOptions(topic_prefix=prefix)).serializer
        serializer.prepare()
        encoded = [serializer.encode(event) for event in events]

        runs: dict[str, Callable[[], float]] = {
            "raw": partial(raw_run, settings, encoded),
            "ours, bytes": partial(
                ours_run, settings, prefix, sending_bytes(encoded[:WARM_UP]), sending_bytes(encoded)
            ),
            "ours, events": partial(
                ours_run, settings, prefix, sending_events(events[:WARM_UP]), sending_events(events)
            ),
        }
        rounds: list[dict[str, float]] = []
        for _ in range(args.repeat):  # interleaved, so load changes hit all three alike
            rounds.append({name: len(events) / run() for name, run in runs.items()})
    finally:
        delete_prefixed_data(Settings.load(shopstream_topic_prefix=prefix))
    report(len(events), rounds)
    orders, customers = args.simulate_orders, args.simulate_customers
    simulate = [simulate_cli(settings, orders, customers) for _ in range(args.repeat)]
    alone = [simulator_alone(orders, customers) for _ in range(args.repeat)]
    print(
        f"shopstream simulate --seed 7 --orders {orders:,} --customers {customers:,}: "
        f"{spread(simulate)} events/s (target >= {TARGET_SIMULATE:,}); "
        f"the simulator alone: {spread(alone)} events/s"
    )


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``median (low-high)`` of ``values``."""
    fmt = f",.{digits}f"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def simulate_cli(settings: Settings, orders: int, customers: int) -> float:
    """Events/s that ``shopstream simulate`` reports, on fresh topics."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    create_topics(settings, prefix)
    try:
        done = subprocess.run(
            [
                *SIMULATE,
                *("--seed", "7", "--orders", str(orders), "--customers", str(customers)),
                *("--topic-prefix", prefix),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    finally:
        delete_prefixed_data(Settings.load(shopstream_topic_prefix=prefix))
    found = re.search(r"throughput: ([\d,]+) events/s", done.stdout)
    if found is None:
        raise SystemExit(f"no throughput in simulate's output: {done.stdout[-500:]}")
    return float(found.group(1).replace(",", ""))


def simulator_alone(orders: int, customers: int) -> float:
    """Events/s of the simulator generating ``simulate``'s events, nothing else."""
    config = SimulationConfig(customers=customers, orders=orders, seed=7)
    started = time.perf_counter()
    count = sum(1 for _ in Simulator(config).events())
    return count / (time.perf_counter() - started)


def report(count: int, rounds: Sequence[dict[str, float]]) -> None:
    """Events/s of each path and the ratios to raw: median (range) over the rounds."""
    print(
        f"{count:,} events, {PARTITIONS} partitions, median (range) of {len(rounds)} "
        "interleaved rounds (send until all acked)"
    )
    for name in rounds[0]:
        print(f"  {name:13s} {spread([r[name] for r in rounds]):>32s} events/s")
    bytes_ratios = [r["ours, bytes"] / r["raw"] for r in rounds]
    events_ratios = [r["ours, events"] / r["raw"] for r in rounds]
    print(
        f"ratio ours (pre-encoded bytes) / raw: {spread(bytes_ratios, 2)}  "
        f"(target >= {TARGET_RATIO})"
    )
    print(
        f"ratio ours (typed events, Avro encoding included) / raw: {spread(events_ratios, 2)}  "
        f"(target >= {TARGET_TYPED_RATIO})"
    )


if __name__ == "__main__":
    main()
