"""The fault-injection suite: all three groups under every fault at once.

While the simulator's events are produced, with two daemons per group so that
partitions move: ``kill -9`` daemons at random instants many times, stop and restart
the Kafka broker, PostgreSQL and the schema registry, re-produce a slice of events
already sent, and send a few undecodable messages. Every 50th customer's carts and
orders are poison (a trigger refuses their rows: dead-lettered as ``db-rejected``). At
the end every read model must equal the reference model, the DLQ must hold exactly the
invalid and the poison events, and the summary (printed) must say lost = 0 and applied
twice = 0.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.projections import GROUPS
from shopstream.config import Settings
from shopstream.stack import LocalStack
from tests.conftest import StackEndpoints
from tests.support.faults import FaultRun, simulated_events
from tests.support.pipeline import BackgroundProducer, produce
from tests.support.poison import refuse_customers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

DAEMONS_PER_GROUP = 2
MIN_KILLS = 15


@pytest.fixture
def run(
    stack: StackEndpoints, database_url: str, unique_name: str, tmp_path: Path
) -> Iterator[FaultRun]:
    settings = Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=database_url,
        shopstream_topic_prefix=f"{unique_name}-",
    )
    fault_run = FaultRun(settings, list(GROUPS), tmp_path).prepare()
    yield fault_run
    fault_run.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_fault_at_once(
    run: FaultRun, local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(2026)
    events = refuse_customers(
        simulated_events(orders=2500, customers=700, seed=21, invalid_rate=0.02), every=50
    )
    run.produced = list(events)
    producer = BackgroundProducer(run.settings, events, rate=1200).start()
    daemons = [run.daemon([group]).start() for group in GROUPS for _ in range(DAEMONS_PER_GROUP)]

    started = time.monotonic()
    broker_restarted = database_restarted = registry_restarted = False
    while not producer.done or run.faults["kill -9 consumer daemon"] < MIN_KILLS:
        run.kill_and_restart(rng, daemons)
        elapsed = time.monotonic() - started
        if not broker_restarted and elapsed > 6:
            local_stack.kafka.stop()
            time.sleep(2.0)
            local_stack.kafka.start()
            run.faults["Kafka broker stopped and restarted"] += 1
            broker_restarted = True
        elif not database_restarted and elapsed > 14:
            local_stack.postgres.stop()
            time.sleep(3.0)
            local_stack.postgres.start()
            run.faults["PostgreSQL stopped and restarted"] += 1
            database_restarted = True
        elif not registry_restarted and elapsed > 20:
            local_stack.registry.stop()
            time.sleep(2.0)
            local_stack.registry.start()
            run.faults["schema registry stopped and restarted"] += 1
            registry_restarted = True
    producer.join(300)

    # re-send a slice of events already sent (same event ids), and undecodable bytes
    middle = len(events) // 3
    resent = events[middle : middle + 2000]
    produce(run.settings, resent)
    run.produced.extend(resent)
    run.faults[f"re-sent {len(resent)} events"] += 1
    run.produce_garbage(5)
    run.faults["undecodable messages"] += 1
    for _ in range(3):
        run.kill_and_restart(rng, daemons)

    run.finish(timeout=600)
    reports = [run.report(group) for group in GROUPS]
    with capsys.disabled():  # the summary belongs in the CI log, pass or fail
        print("\n" + run.summary(reports), flush=True)
    run.assert_exact(reports)
    assert broker_restarted and database_restarted and registry_restarted
