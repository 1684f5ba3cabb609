"""Load and faults on the services: many concurrent async clients drive fixed shopper
journeys through ``shopstream serve`` (PostgreSQL) while the service and the separate
``shopstream relay`` are each killed with ``kill -9`` and restarted.

10 % of the answered requests are sent again with the same Idempotency-Key (they must
get the stored answer back), and every request that got no answer is retried with its
key until it does. At the end: each 2xx command had exactly one effect (the outbox
holds exactly the events of the 2xx commands), no refused command wrote an event,
every committed event is in Kafka (by event_id, duplicates only from relay restarts),
in commit order per aggregate, and the consumer groups' read models equal the
reference folded from the outbox. Finally the last relay pass is un-marked (what a
relay killed between Kafka's acknowledgement and its marking leaves): those events are
published twice, with the same event ids, and the groups' deduplication absorbs them.
Bounded: a fixed number of journeys, loopback only.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.services.api_client import ApiDriver, DriveReport
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.conftest import StackEndpoints, fresh_postgres_database
from tests.support.pipeline import create_project_topics
from tests.support.services import (
    ServiceProcess,
    outbox_table,
    outbox_verdict,
    service_env,
    wait_outbox_drained,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

ORDERS, CUSTOMERS, SEED = 250, 250, 5
"""Enough journeys that the load outlasts the kill rounds (60 finished in 5 s once the
service got faster, before the third round)."""
CONCURRENCY = 32
KILLS_EACH = 3
RESENT = 40
"""Sent rows marked unsent again at the end: the state a relay killed between Kafka's
acknowledgement and its marking leaves (its last pass: a suffix of each aggregate)."""


def _unmark_last_pass(engine: Engine, count: int) -> int:
    with engine.begin() as connection:
        last = list(
            connection.execute(
                select(outbox_table.c.id).order_by(outbox_table.c.id.desc()).limit(count)
            ).scalars()
        )
        connection.execute(
            update(outbox_table).where(outbox_table.c.id.in_(last)).values(sent_at=None)
        )
    return len(last)


@pytest.fixture
def pg_settings(stack: StackEndpoints, unique_name: str) -> Iterator[Settings]:
    if not stack.postgres_url:
        pytest.skip("no PostgreSQL in this stack (set TEST_POSTGRES_URL)")
    with fresh_postgres_database(stack.postgres_url) as url:
        yield Settings.load(
            kafka_bootstrap_servers=stack.bootstrap_servers,
            schema_registry_url=stack.registry_url,
            database_url=url,
            shopstream_topic_prefix=f"{unique_name}-",
        )


def test_load_with_service_and_relay_killed(pg_settings: Settings, tmp_path: Path) -> None:
    started = time.monotonic()
    create_project_topics(pg_settings, partitions=3)
    env = service_env(pg_settings)
    service = ServiceProcess(env, tmp_path / "serve.log", args=("--no-relay",)).start()
    relay = ServiceProcess(env, tmp_path / "relay.log", command="relay").start()
    engine = make_engine(pg_settings.database_url)
    events = list(
        Simulator(
            SimulationConfig(customers=CUSTOMERS, orders=ORDERS, seed=SEED, invalid_rate=0.05)
        ).events()
    )
    driver = ApiDriver(service.url, CONCURRENCY, repeat_fraction=0.1, retry_for_s=60, seed=SEED)
    reports: list[DriveReport] = []
    driving = threading.Thread(target=lambda: reports.append(driver.run(events)))
    kills: Counter[str] = Counter()
    rng = random.Random(SEED)
    try:
        driving.start()
        for _round in range(KILLS_EACH):
            if not driving.is_alive():
                break
            time.sleep(rng.uniform(0.5, 2.0))
            first, second = rng.sample([relay, service], 2)  # both down, either first
            first.kill9()
            time.sleep(rng.uniform(0.0, 0.5))
            second.kill9()
            kills.update(("relay", "serve"))
            relay.start(ready_timeout=0)  # comes up while the service starts
            service.start()
            relay.wait_ready(60)
        driving.join(120)
        assert not driving.is_alive(), "the clients did not finish"
        report = reports[0]
        with engine.connect() as connection:
            committed = connection.execute(
                select(func.count()).select_from(outbox_table)
            ).scalar_one()
        wait_outbox_drained(engine)
        resent = _unmark_last_pass(engine, RESENT)
        verdict = outbox_verdict(pg_settings, engine, tmp_path)
        summary = (
            f"[services load] {len(report.outcomes)} commands in {report.seconds:.1f} s "
            f"({CONCURRENCY} clients): 2xx {len(report.succeeded)}, refused "
            f"{len(report.refused)}, retried {report.retried} "
            f"(repeats {sum(o.repeated for o in report.outcomes)}), kills {dict(kills)}; "
            f"{verdict.summary()}; total {time.monotonic() - started:.0f} s"
        )
        print(summary)
        assert not report.unexpected, [
            (o.call.method, o.call.path, o.status) for o in report.unexpected[:5]
        ]
        assert committed == sum(o.call.events for o in report.succeeded), (
            "the outbox must hold exactly the events of the 2xx commands"
        )
        verdict.assert_exact()
        assert verdict.duplicated >= resent, "the un-marked rows were published again"
        assert kills["serve"] >= 1 and kills["relay"] >= 1, kills
        assert service.terminate() == 0 and relay.terminate() == 0
    finally:
        service.kill9()
        relay.kill9()
        engine.dispose()
