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

Needs the stack (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL). Prints events/s of
each (best of --repeat) and the ratios to raw.

    python bench/produce.py [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
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
TARGET_RATE = 30_000
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
        timings = {name: float("inf") for name in runs}
        for _ in range(args.repeat):  # interleaved, so load changes hit all three alike
            for name, run in runs.items():
                timings[name] = min(timings[name], run())
    finally:
        delete_prefixed_data(Settings.load(shopstream_topic_prefix=prefix))
    report(len(events), timings)


def report(count: int, timings: dict[str, float]) -> None:
    rates = {name: count / seconds for name, seconds in timings.items()}
    print(f"{count:,} events, {PARTITIONS} partitions, best of runs (send until all acked)")
    for name, rate in rates.items():
        print(f"  {name:13s} {rate:10,.0f} events/s  ({timings[name] / count * 1e6:.2f} us/event)")
    raw = rates["raw"]
    bytes_ratio = rates["ours, bytes"] / raw
    events_ratio = rates["ours, events"] / raw
    print(f"ratio ours (pre-encoded bytes) / raw: {bytes_ratio:.2f}  (target >= {TARGET_RATIO})")
    print(f"ratio ours (typed events, Avro encoding included) / raw: {events_ratio:.2f}")
    print(
        f"ours, events: {rates['ours, events']:,.0f} events/s  (target >= {TARGET_RATE:,}): "
        f"{'ok' if rates['ours, events'] >= TARGET_RATE else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
