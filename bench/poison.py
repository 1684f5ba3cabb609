"""Throughput of order-state with one poison event in every batch, beside a clean run.

The poison is an ``OrderCreated`` the database refuses (a trigger on ``orders``
refuses one customer id, installed for both runs so that both pay for it): the
runtime isolates it by bisection with savepoints and dead-letters it as
``db-rejected`` (consumers/runtime/db_refusals.py). The events are the simulator's
order events with many shoppers at once (the shop's realistic, spread-out workload,
as ``bench/materialize.py``'s "spread"), the same ones on both topics, the poisoned
one with a poison event after every batch's worth. Each run is the shipped daemon
(``shopstream consume order-state --until-caught-up`` through
:mod:`bench.daemon_probe`). Prints events/s and the consumer's CPU per applied
event of the clean and the poisoned topic, measured alternately in the same run
(median of ``--rounds``), and their ratios; the target is at least 0.8.

Needs a running stack (KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL); PostgreSQL from
``--postgres-url`` or BENCH_POSTGRES_URL (SQLite only without). Everything it creates
(topics, subjects, databases) is deleted when the run ends. From the repository root:

    python -m bench.poison [--orders 15000] [--customers 20000] [--rounds 3] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

from bench.materialize import BATCH_SIZE, ORDER_TYPES, SEED, migrate, rate_one, run_daemons
from producers.base import EventProducer
from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.events import DomainEvent, OrderCreated, OrderLine
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.logs import configure_logging
from shopstream.prefix import delete_prefixed_data
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger


def order_events(customers: int, orders: int) -> list[DomainEvent]:
    """The simulator's order events, ``customers`` shoppers at once."""
    config = SimulationConfig(customers=customers, orders=orders, seed=SEED)
    return [e for e in Simulator(config).events() if e.event_type in ORDER_TYPES]


def produce(settings: Settings, events: list[DomainEvent]) -> None:
    with EventProducer(settings) as producer:
        for event in events:
            producer.send(event)
        producer.close().raise_if_failed()


def with_poison(events: list[DomainEvent], every: int) -> list[DomainEvent]:
    """``events`` with a refused OrderCreated after every ``every`` events."""
    poisoned: list[DomainEvent] = []
    for index, event in enumerate(events):
        if index % every == every // 2:
            poisoned.append(poison(index))
        poisoned.append(event)
    return poisoned


def poison(index: int) -> OrderCreated:
    line = OrderLine("SKU-0001", 1, Decimal("1.00"))
    return OrderCreated(
        order_id=f"poison-{index}",
        customer_id=REFUSED_CUSTOMER,
        lines=(line,),
        total=line.amount,
        currency="EUR",
    )


def measure(prefix: str, database_url: str, tmp: Path) -> tuple[float, float]:
    """Events/s and CPU µs per applied event of one daemon run (trigger installed)."""
    migrate(database_url)
    engine = make_engine(database_url)
    install_refusal_trigger(engine, "orders")
    engine.dispose()
    (run,) = run_daemons(prefix, database_url, 1, tmp)
    return rate_one(run), run.stage_us()["total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=15_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as cleanup:
        run(args, cleanup)


def run(args: argparse.Namespace, cleanup: ExitStack) -> None:
    tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))

    def fresh_topics(events: list[DomainEvent]) -> str:
        prefix = f"bench-poison-{uuid.uuid4().hex[:8]}-"
        settings = Settings.load(shopstream_topic_prefix=prefix)
        cleanup.callback(delete_prefixed_data, settings)
        create_topics(settings, project_topics(prefix=prefix))
        produce(settings, events)
        return prefix

    def fresh_sqlite() -> str:
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"

    def fresh_postgres() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        cleanup.callback(drop_postgres_database, args.postgres_url, name)
        return create_postgres_database(args.postgres_url, name)

    events = order_events(args.customers, args.orders)
    poisoned = with_poison(events, BATCH_SIZE)
    print(
        f"producing {len(events)} order events ({args.customers} shoppers at once), and the "
        f"same with {len(poisoned) - len(events)} poison events (one per {BATCH_SIZE}, the "
        f"batch size) to {ORDER_TOPIC} ...",
        flush=True,
    )
    clean_prefix, poisoned_prefix = fresh_topics(events), fresh_topics(poisoned)
    databases: list[tuple[str, Callable[[], str]]] = [("SQLite", fresh_sqlite)]
    if args.postgres_url:
        databases.append(("PostgreSQL", fresh_postgres))
    print(
        f"\n{'order-state, 1 member':24s} {'clean ev/s':>11s} {'poisoned ev/s':>14s} "
        f"{'ratio':>6s} {'clean µs/ev':>12s} {'poisoned µs/ev':>15s} {'ratio':>6s}"
    )
    for name, new_database in databases:
        clean: list[tuple[float, float]] = []
        dirty: list[tuple[float, float]] = []
        for _ in range(args.rounds):  # alternately, so both see the same machine
            clean.append(measure(clean_prefix, new_database(), tmp))
            dirty.append(measure(poisoned_prefix, new_database(), tmp))
        a, b = (statistics.median(r for r, _ in runs) for runs in (clean, dirty))
        ca, cb = (statistics.median(c for _, c in runs) for runs in (clean, dirty))
        spread = ", ".join(f"{d[0] / c[0]:.2f}" for c, d in zip(clean, dirty, strict=True))
        print(
            f"{name:24s} {a:11.0f} {b:14.0f} {b / a:6.2f} {ca:12.1f} {cb:15.1f} {ca / cb:6.2f}"
            f"   (per round: {spread})",
            flush=True,
        )
    if not args.postgres_url:
        print("(PostgreSQL skipped: pass --postgres-url or BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
