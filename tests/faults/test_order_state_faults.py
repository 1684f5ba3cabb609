"""Fault tests of the order-state group that kill, not ask.

Real daemons (``shopstream consume``) against the real broker and database; the
final tables must equal the reference model exactly: nothing lost, nothing applied
twice, and the dead-letter topic holds exactly the invalid events.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.config import Settings
from shopstream.stack import LocalStack
from tests.support.faults import FaultRun, simulated_events
from tests.support.pipeline import BackgroundProducer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

GROUP = "order-state"


@pytest.fixture
def run(stack: object, database_url: str, unique_name: str, tmp_path: Path) -> Iterator[FaultRun]:
    endpoints = stack
    settings = Settings.load(
        kafka_bootstrap_servers=endpoints.bootstrap_servers,  # type: ignore[attr-defined]
        schema_registry_url=endpoints.registry_url,  # type: ignore[attr-defined]
        database_url=database_url,
        shopstream_topic_prefix=f"{unique_name}-",
    )
    fault_run = FaultRun(settings, [GROUP], tmp_path).prepare()
    yield fault_run
    fault_run.close()


def finish_and_check(run: FaultRun) -> None:
    run.finish()
    reports = [run.report(GROUP)]
    print("\n" + run.summary(reports))  # shown with -s or on failure
    run.assert_exact(reports)


def test_kill9_in_the_middle_of_batches(run: FaultRun) -> None:
    run.produced = simulated_events(orders=700, customers=150, seed=5, invalid_rate=0.03)
    producer = BackgroundProducer(run.settings, run.produced, rate=2000).start()
    daemon = run.daemon([GROUP]).start()
    rng = random.Random(7)
    began = time.monotonic()
    while not producer.done or run.faults.total() < 6:
        run.kill_and_restart(rng, [daemon])
    producer.join(120)
    print(f"[faults] {run.faults.total()} kills in {time.monotonic() - began:.1f}s")
    finish_and_check(run)
    assert run.faults["kill -9 consumer daemon"] >= 6


def test_two_daemons_with_partitions_moving(run: FaultRun) -> None:
    """Two members of the group (on SQLite: two writers of one file) while partitions
    move between them on kill -9 and on clean leaves."""
    run.produced = simulated_events(orders=700, customers=150, seed=6, invalid_rate=0.03)
    producer = BackgroundProducer(run.settings, run.produced, rate=2000).start()
    daemons = [run.daemon([GROUP]).start(), run.daemon([GROUP]).start()]
    rng = random.Random(8)
    while not producer.done or run.faults.total() < 8:
        time.sleep(rng.uniform(0.5, 1.5))
        victim = rng.choice(daemons)
        if rng.random() < 0.5:
            run.kill_and_restart(rng, [victim])
        else:  # a clean leave: partitions are revoked and handed over
            assert victim.terminate() == 0
            run.faults["SIGTERM + restart (rebalance)"] += 1
            victim.start()
    producer.join(120)
    finish_and_check(run)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_stopped_and_restarted_while_events_flow(
    run: FaultRun, local_stack: LocalStack
) -> None:
    run.produced = simulated_events(orders=600, customers=150, seed=9, invalid_rate=0.03)
    producer = BackgroundProducer(run.settings, run.produced, rate=1500).start()
    daemon = run.daemon([GROUP]).start()
    daemon.wait_ready()  # an outage at start-up is a configuration error (exit 2)
    for _ in range(2):
        time.sleep(1.5)
        local_stack.postgres.stop()
        run.faults["PostgreSQL stopped and restarted"] += 1
        time.sleep(3.0)
        local_stack.postgres.start()
        assert daemon.running, daemon.log_text()[-3000:]
    producer.join(120)
    assert daemon.running, "the daemon must survive a database outage"
    assert "database unavailable" in daemon.log_text()
    finish_and_check(run)


def test_the_same_file_produced_twice(run: FaultRun, tmp_path: Path) -> None:
    events = simulated_events(orders=300, customers=80, seed=10, invalid_rate=0.05)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e.to_json()) + "\n" for e in events), encoding="utf-8")
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "shopstream", "produce", "file", str(path)],
            env=run.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    run.produced = events + events
    run.faults["whole file re-sent"] += 1
    daemon = run.daemon([GROUP]).start()
    time.sleep(2.0)
    daemon.kill9()
    run.faults["kill -9 consumer daemon"] += 1
    finish_and_check(run)
