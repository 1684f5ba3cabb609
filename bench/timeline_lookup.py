"""``inspect order ID`` on a big topic: the key's one partition vs a scan of every partition.

Fills fresh topics (6 partitions, created for the run and deleted after) with
``--events`` messages of real Confluent-framed Avro order events, produced as raw
bytes with confluent-kafka (the bulk reuses a pool of encoded events under 200,000
order ids), plus one known order's story. Then, best of ``--repeat``:

- timeline: :func:`order_timeline` (the order's partition of order-events and its DLQ,
  then its cart's partition of cart-events and its DLQ; decodes only the matches);
- full scan: every partition of order-events read to its end, keys compared as bytes
  (what finding one key costs without knowing its partition; no decoding at all).

Needs the stack (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL).

    python bench/timeline_lookup.py [--events 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import uuid
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from confluent_kafka import KafkaError, Producer, TopicPartition

from producers.base import EventProducer, ProducerOptions
from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.events import DomainEvent, OrderCreated, OrderLine, OrderPaid
from shopstream.inspection.timeline import order_timeline
from shopstream.kafka.clients import make_reader, producer_config
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.prefix import delete_prefixed_data

PARTITIONS = 6
BULK_ORDERS = 200_000
POOL = 1_000


def _pool(settings: Settings, prefix: str) -> list[bytes]:
    serializer = EventProducer(settings, ProducerOptions(topic_prefix=prefix)).serializer
    values = []
    for i in range(POOL):
        order_id = f"pool-{i}"
        event: DomainEvent = (
            OrderCreated(
                order_id=order_id,
                customer_id=f"c-{i}",
                lines=(OrderLine(sku="SKU-1", quantity=1, unit_price=Decimal("9.99")),),
                total=Decimal("9.99"),
                currency="EUR",
            )
            if i % 2 == 0
            else OrderPaid(
                order_id=order_id, payment_id=f"p-{i}", amount=Decimal("9.99"), currency="EUR"
            )
        )
        values.append(serializer.encode(event).value)
    return values


def fill(settings: Settings, prefix: str, events: int) -> str:
    """Produce ``events`` bulk messages and one known order in the middle; its id."""
    topic = prefix + ORDER_TOPIC
    pool = _pool(settings, prefix)
    producer = Producer(producer_config(settings, **{"linger.ms": 50}))
    target = f"order-target-{uuid.uuid4().hex[:8]}"
    story: list[DomainEvent] = [
        OrderCreated(
            order_id=target,
            customer_id="c-target",
            lines=(OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("5.00")),),
            total=Decimal("10.00"),
            currency="EUR",
        ),
        OrderPaid(order_id=target, payment_id="p-target", amount=Decimal("10.00"), currency="EUR"),
    ]
    started = time.perf_counter()
    headers: list[tuple[str, str | bytes | None]] = [("event_type", b"OrderCreated")]
    for i in range(events):
        if i == events // 2:
            with EventProducer(settings, ProducerOptions(topic_prefix=prefix)) as ours:
                ours.send_all(story)
        key = f"order-{i % BULK_ORDERS}".encode()
        while True:
            try:
                producer.produce(topic, pool[i % POOL], key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    assert remaining == 0, f"{remaining} not delivered"
    print(f"produced {events:,} events in {time.perf_counter() - started:.1f}s")
    return target


def full_scan(settings: Settings, topic: str, key: bytes) -> tuple[int, int]:
    """Read every partition to its end; (messages read, messages with ``key``)."""
    reader = make_reader(settings)
    try:
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
        reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        pending = {p for p, end in ends.items() if end > 0}
        read = found = 0
        while pending:
            for message in reader.consume(500, 1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                read += 1
                if message.key() == key:
                    found += 1
        return read, found
    finally:
        reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prefix = f"bench-timeline-{uuid.uuid4().hex[:8]}-"
    with TemporaryDirectory() as workdir:
        settings = Settings.load(
            shopstream_topic_prefix=prefix,
            database_url=f"sqlite:///{Path(workdir) / 'none.db'}",
        )
        create_topics(settings, project_topics(PARTITIONS, 1, prefix))
        try:
            target = fill(settings, prefix, args.events)
            lookups, scans = [], []
            for _ in range(args.repeat):
                began = time.perf_counter()
                timeline = order_timeline(settings, target)
                lookups.append(time.perf_counter() - began)
                assert len(timeline.entries) == 2, timeline.entries
                began = time.perf_counter()
                read, found = full_scan(settings, prefix + ORDER_TOPIC, target.encode())
                scans.append(time.perf_counter() - began)
                assert found == 2
            reads = ", ".join(
                f"{r.topic.removeprefix(prefix)}:{r.partition} {r.end - r.start:,} msgs"
                for r in timeline.reads
            )
            print(f"timeline lookup: best {min(lookups):.3f}s of {args.repeat} ({reads})")
            print(f"full scan:       best {min(scans):.3f}s of {args.repeat} ({read:,} msgs)")
            print(f"speed-up:        {min(scans) / min(lookups):.1f}x")
        finally:
            delete_prefixed_data(settings)


if __name__ == "__main__":
    main()
