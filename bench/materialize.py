"""Materialization speed of the ``order-state`` group, with a baseline from the same run.

Prints events/s applied by order-state into SQLite and into PostgreSQL beside the
rate of the same consumer decoding without a database (the baseline), the ratios,
and the end-to-end latency (p50/p99) from produce to committed row at a fixed rate.

Each database is measured with one member in the group (one process: the GIL makes
it a one-core consumer) and with ``--members`` processes in the group, the way the
group scales out: its steady rate while every member is consuming (from the moment
the last one committed its first batch to the moment the first one is done).

Needs a running stack (``shopstream stack up --postgres``) and reads
KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL; PostgreSQL from ``--postgres-url`` or
BENCH_POSTGRES_URL (skipped when neither is given). Everything it writes lives under
a unique topic prefix, group ids and database, so it never touches real data, and
all of it (topics, subjects, databases) is deleted when the run ends.

    python bench/materialize.py [--orders 60000] [--members 2] [--rate 1000]
                                [--latency-seconds 10] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from decimal import Decimal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from consumers.projections.base import Envelope
from consumers.projections.order_state import OrderStateProjection
from consumers.runtime.gc_tuning import tuned_garbage_collector
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import ORDER_TOPIC, load_catalog
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
from shopstream.kafka.clients import make_consumer, make_producer
from shopstream.kafka.offsets import end_offsets
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.logs import configure_logging
from shopstream.prefix import delete_prefixed_data
from shopstream.serde import EventDeserializer, EventSerializer, make_registry_client

Headers = list[tuple[str, str | bytes | None]]

PARTITIONS = 6
"""Partitions of the event topics (``shopstream topics create``'s default)."""

BATCH_SIZE = 5000
"""Messages per batch for the throughput runs (the daemon's --batch-size)."""


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


def produce_all(settings: Settings, prefix: str, events: list[DomainEvent]) -> None:
    serializer = EventSerializer(
        make_registry_client(settings.registry_config()),
        catalog=load_catalog().with_topic_prefix(prefix),
    )
    producer: Producer = make_producer(settings)
    for event in events:
        encoded = serializer.encode(event)
        while True:
            try:
                producer.produce(
                    encoded.topic,
                    key=encoded.key,
                    value=encoded.value,
                    headers=cast(Headers, encoded.headers),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise SystemExit("produce: not every event was delivered")


def baseline_decode(settings: Settings, topic: str, total: int) -> float:
    """Events/s of a consumer that polls and decodes the same topic, without a database.

    Timed from the first message to the last, like :func:`materialize`, so joining the
    group is not counted.
    """
    consumer: Consumer = make_consumer(settings, f"bench-baseline-{uuid.uuid4().hex[:8]}")
    deserializer = EventDeserializer(make_registry_client(settings.registry_config()))
    consumer.subscribe([topic])
    seen = 0
    first: float | None = None
    while seen < total:
        for message in consumer.consume(num_messages=5000, timeout=0.2):
            if message.error() is None:
                first = first or time.perf_counter()
                deserializer.decode(message.value())
                seen += 1
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return total / elapsed


def baseline_decode_members(settings: Settings, topic: str, members: int) -> float:
    """Events/s of ``members`` decode-only processes sharing the topic's partitions.

    Each is assigned its share of the partitions outright (no group to join), all
    start together; timed until the last one has decoded its share.
    """
    context = multiprocessing.get_context("spawn")
    results: Queue[tuple[int, float]] = context.Queue()
    go = context.Event()
    shares = [list(range(member, PARTITIONS, members)) for member in range(members)]
    processes = [
        context.Process(
            target=_decode_member,
            args=(settings.shopstream_topic_prefix, topic, share, results, go),
            daemon=True,
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    time.sleep(3.0)  # let every process import and connect before the clock starts
    started = time.time()
    go.set()
    finished = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    total = sum(count for count, _ in finished)
    return total / (max(at for _, at in finished) - started)


def _decode_member(
    prefix: str, topic: str, partitions: list[int], results: Queue[tuple[int, float]], go: Event
) -> None:
    """Decode ``partitions`` of ``topic`` to their end; report (events, finish time)."""
    settings = Settings.load(shopstream_topic_prefix=prefix)
    ends = end_offsets(settings, [(topic, p) for p in partitions])
    consumer: Consumer = make_consumer(settings, f"bench-baseline-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    deserializer = EventDeserializer(make_registry_client(settings.registry_config()))
    remaining = sum(ends.values())
    count = 0
    go.wait(120)
    while count < remaining:
        for message in consumer.consume(num_messages=BATCH_SIZE, timeout=0.2):
            if message.error() is None:
                deserializer.decode(message.value())
                count += 1
    finished = time.time()
    consumer.close()
    results.put((count, finished))


Commits = list[tuple[float, int]]
"""(wall-clock time of a batch's commit, events it applied), in commit order."""


def materialize(settings: Settings, database_url: str) -> tuple[float, int]:
    """Events/s applied by order-state from the beginning of the topic until caught up.

    Timed from the first batch's commit to the last (joining the group, and the first
    batch, are not counted): the group's steady rate.
    """
    migrate(database_url)
    commits, applied = run_until_caught_up(settings, database_url)
    if len(commits) < 2:
        raise SystemExit("too few batches to time; produce more events (--orders)")
    counted = sum(n for _, n in commits[1:])
    return counted / (commits[-1][0] - commits[0][0]), applied


def migrate(database_url: str) -> None:
    """Bring the database's schema to the head revision."""
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()


def run_until_caught_up(
    settings: Settings, database_url: str, go: Event | None = None
) -> tuple[Commits, int]:
    """One member of order-state, run as the consumer daemon runs it (once ``go`` is
    set, if given) until caught up; its commits and the events it applied."""
    engine = make_engine(database_url)
    runner = GroupRunner(
        settings,
        OrderStateProjection(),
        engine,
        ConsumerMetrics(),
        RuntimeOptions(until_caught_up=True, batch_size=BATCH_SIZE),
        threading.Event(),
    )
    commits: Commits = []
    runner.add_commit_listener(lambda applied, at: commits.append((at, len(applied))))
    runner.start()
    if go is not None:
        go.wait(120)
    with tuned_garbage_collector():  # as the consumer daemon runs its groups
        runner.run()
    runner.close()
    engine.dispose()
    return commits, runner.events_applied


def materialize_members(settings: Settings, database_url: str, members: int) -> float:
    """Events/s applied by the order-state group with ``members`` processes in it.

    The steady rate while all of them consume: from the moment the last member
    committed its first batch to the moment the first one committed its last.
    """
    migrate(database_url)
    context = multiprocessing.get_context("spawn")  # never fork librdkafka's threads
    results: Queue[Commits] = context.Queue()
    go = context.Event()
    processes = [
        context.Process(
            target=_member,
            args=(settings.shopstream_topic_prefix, database_url, results, go),
            daemon=True,
        )
        for _ in range(members)
    ]
    for process in processes:
        process.start()
    go.set()
    per_member = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    return steady_rate(per_member)


def _member(prefix: str, database_url: str, results: Queue[Commits], go: Event) -> None:
    """One member process of the group (see :func:`materialize_members`)."""
    configure_logging("WARNING")
    settings = Settings.load(shopstream_topic_prefix=prefix)
    commits, _ = run_until_caught_up(settings, database_url, go)
    results.put(commits)


def steady_rate(per_member: Sequence[Commits]) -> float:
    """Events/s committed while every member was consuming (see :func:`materialize_members`)."""
    if any(len(commits) < 2 for commits in per_member):
        raise SystemExit("a member applied fewer than two batches; produce more (--orders)")
    began = max(commits[0][0] for commits in per_member)
    ended = min(commits[-1][0] for commits in per_member)
    if ended - began < 1.0:
        raise SystemExit("the members overlapped for under a second; produce more (--orders)")
    counted = sum(n for commits in per_member for at, n in commits if began < at <= ended)
    return counted / (ended - began)


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
    parser = argparse.ArgumentParser(description="order-state materialization benchmark")
    parser.add_argument("--orders", type=int, default=60_000)
    parser.add_argument("--members", type=int, default=2, help="processes in the group")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as cleanup:
        run(args, cleanup)


def run(args: argparse.Namespace, cleanup: ExitStack) -> None:
    """The whole benchmark; everything it creates is registered on ``cleanup``."""

    def fresh_settings(prefix: str) -> Settings:
        settings = Settings.load(shopstream_topic_prefix=prefix)
        cleanup.callback(delete_prefixed_data, settings)
        create_topics(settings, project_topics(prefix=prefix))
        return settings

    def fresh_database() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        cleanup.callback(drop_postgres_database, args.postgres_url, name)
        return create_postgres_database(args.postgres_url, name)

    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    settings = fresh_settings(prefix)
    events = list(life_cycles(args.orders))
    print(f"producing {len(events)} order events to {prefix}{ORDER_TOPIC} ...", flush=True)
    produce_all(settings, prefix, events)
    topic = settings.topic(ORDER_TOPIC)
    total = sum(end_offsets(settings, [(topic, p) for p in range(PARTITIONS)]).values())

    one = baseline_decode(settings, topic, total)
    rows: list[tuple[str, float, float]] = [("decode only (baseline)", one, one)]
    several = one
    if args.members > 1:
        several = baseline_decode_members(settings, topic, args.members)
        rows.append((f"decode only, {args.members} processes (baseline)", several, several))
    tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))

    def fresh_sqlite() -> str:
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"

    databases: list[tuple[str, Callable[[], str]]] = [("SQLite", fresh_sqlite)]
    if args.postgres_url:
        databases.append(("PostgreSQL", fresh_database))
    for name, new_database in databases:
        rate, _ = materialize(settings, new_database())
        rows.append((f"order-state -> {name}, 1 member", rate, one))
        if args.members > 1:
            rate = materialize_members(settings, new_database(), args.members)
            rows.append((f"order-state -> {name}, {args.members} members", rate, several))
    print(f"\n{'consumer':44s} {'events/s':>10s} {'ratio to its baseline':>22s}")
    for name, value, baseline in rows:
        print(f"{name:44s} {value:10.0f} {value / baseline:22.2f}")
    if not args.postgres_url:
        print("(PostgreSQL skipped: pass --postgres-url or BENCH_POSTGRES_URL)")

    lat_settings = fresh_settings(f"bench-lat-{uuid.uuid4().hex[:8]}-")
    lat_url = fresh_database() if args.postgres_url else f"sqlite:///{tmp / 'latency.db'}"
    where = "PostgreSQL" if args.postgres_url else "SQLite"
    values = latency(lat_settings, lat_url, args.rate, args.latency_seconds)
    if values:
        print(
            f"\nlatency produce -> committed row at {args.rate} ev/s into {where}: "
            f"p50 {statistics.median(values):.0f} ms, p99 {percentile(values, 0.99):.0f} ms "
            f"({len(values)} events)"
        )


if __name__ == "__main__":
    main()
