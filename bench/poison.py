"""Throughput of order-state with one poison event in every batch, beside a clean run.

The poison is an ``OrderCreated`` the database refuses (a trigger on ``orders``
refuses one customer id, installed for both runs so that both pay for it): the
runtime isolates it by bisection with savepoints and dead-letters it as
``db-rejected`` (consumers/runtime/db_refusals.py). Prints events/s of the clean and the
poisoned topic, measured alternately in the same run (median of ``--rounds``), and
their ratio; the target is a ratio of at least 0.8.

Needs a running stack (KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL); PostgreSQL from
``--postgres-url`` or BENCH_POSTGRES_URL (SQLite only without). Everything it creates
(topics, subjects, databases) is deleted when the run ends. From the repository root:

    python -m bench.poison [--orders 15000] [--rounds 2] [--postgres-url URL]
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

from bench.materialize import BATCH_SIZE, life_cycles, produce_all, run_until_caught_up
from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import DomainEvent, OrderCreated, OrderLine
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.logs import configure_logging
from shopstream.prefix import delete_prefixed_data
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger


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


def rate(settings: Settings, database_url: str) -> float:
    """Events/s applied from the first batch's commit to the last (as materialize)."""
    engine = make_engine(database_url)
    upgrade(engine)
    install_refusal_trigger(engine, "orders")
    engine.dispose()
    commits, _ = run_until_caught_up(settings, database_url)
    if len(commits) < 3:
        raise SystemExit("too few batches to time; produce more events (--orders)")
    counted = sum(n for _, n in commits[1:])
    return counted / (commits[-1][0] - commits[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=15_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as cleanup:
        run(args, cleanup)


def run(args: argparse.Namespace, cleanup: ExitStack) -> None:
    tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))

    def fresh_topics(events: list[DomainEvent]) -> Settings:
        prefix = f"bench-poison-{uuid.uuid4().hex[:8]}-"
        settings = Settings.load(shopstream_topic_prefix=prefix)
        cleanup.callback(delete_prefixed_data, settings)
        create_topics(settings, project_topics(prefix=prefix))
        produce_all(settings, prefix, events)
        return settings

    def fresh_sqlite() -> str:
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"

    def fresh_postgres() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        cleanup.callback(drop_postgres_database, args.postgres_url, name)
        return create_postgres_database(args.postgres_url, name)

    events = list(life_cycles(args.orders))
    poisoned = with_poison(events, BATCH_SIZE)
    print(
        f"producing {len(events)} order events, and the same with {len(poisoned) - len(events)} "
        f"poison events (one per {BATCH_SIZE}, the batch size) to {ORDER_TOPIC} ...",
        flush=True,
    )
    clean_topics, poisoned_topics = fresh_topics(events), fresh_topics(poisoned)
    databases: list[tuple[str, Callable[[], str]]] = [("SQLite", fresh_sqlite)]
    if args.postgres_url:
        databases.append(("PostgreSQL", fresh_postgres))
    title = "order-state, 1 member"
    print(f"\n{title:28s} {'clean ev/s':>11s} {'poisoned ev/s':>14s} {'ratio':>6s}")
    for name, new_database in databases:
        clean: list[float] = []
        dirty: list[float] = []
        for _ in range(args.rounds):  # alternately, so both see the same machine
            clean.append(rate(clean_topics, new_database()))
            dirty.append(rate(poisoned_topics, new_database()))
        a, b = statistics.median(clean), statistics.median(dirty)
        print(f"{name:28s} {a:11.0f} {b:14.0f} {b / a:6.2f}", flush=True)
    if not args.postgres_url:
        print("(PostgreSQL skipped: pass --postgres-url or BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
