"""Kill Kafka nodes of a three-node cluster under load; nothing may be lost or doubled.

While the simulator produces (idempotent, acks=all) and one daemon per group applies
into PostgreSQL: ``kill -9`` the leader of the busiest partition, later the active
controller, later a node (the groups' coordinator) for longer than the consumers'
session timeout; each is restarted after a while and rejoins every ISR before the
next fault. The printed table gives, per fault, the events in flight at the kill,
the seconds until producing and applying resumed, and the events lost or duplicated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.groups import PROJECT_GROUPS
from shopstream.simulation.simulator import SimulationConfig, Simulator
from shopstream.stack import LocalStack
from tests.conftest import fresh_postgres_database
from tests.support.failover import FailoverDrill, LoadProducer
from tests.support.faults import FaultRun
from tests.support.own_stack import own_stack
from tests.support.readback import read_topic

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))
RATE = 150.0
"""Events per second while the faults happen."""
SESSION_TIMEOUT_S = 10.0
"""The daemons' session.timeout.ms (consumers.runtime default), in seconds."""
DOWN_S = 10.0
"""How long a killed node stays down: past broker.session.timeout.ms (9 s), so the
controller fences it and moves its leaderships before it returns."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalStack]:
    with own_stack(brokers=3) as local:
        yield local


@pytest.mark.timeout(600)
def test_failover_under_load(
    cluster: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints = cluster.endpoints
    assert endpoints.database_url is not None
    with fresh_postgres_database(endpoints.database_url) as database_url:
        settings = Settings.load(
            kafka_bootstrap_servers=endpoints.bootstrap_servers,
            schema_registry_url=endpoints.registry_url,
            database_url=database_url,
            shopstream_topic_prefix="failover-",
        )
        run = FaultRun(settings, list(PROJECT_GROUPS), tmp_path).prepare()
        try:
            _drill(cluster, run, capsys)
        except AssertionError:
            for daemon in run.daemons:  # why a group stopped, in the failure report
                tail = daemon.log_text()[-3000:]
                print(f"--- {daemon.groups} (running: {daemon.running})\n{tail}")
            raise
        finally:
            run.close()


def _replication(local: LocalStack, topics: list[str]) -> dict[str, set[int]]:
    admin = AdminClient({"bootstrap.servers": local.bootstrap_servers, "log_level": 0})
    metadata = admin.list_topics(timeout=10).topics
    return {name: {len(p.replicas) for p in metadata[name].partitions.values()} for name in topics}


def _drill(local: LocalStack, run: FaultRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.engine is not None
    topics = [run.settings.topic(CART_TOPIC), run.settings.topic(ORDER_TOPIC)]
    internal = ["__consumer_offsets", "kafkasql-journal", "kafkasql-snapshots"]
    assert _replication(local, [*topics, *internal]) == {name: {3} for name in topics + internal}
    config = SimulationConfig(customers=400, orders=None, seed=18, invalid_rate=0.01)
    producer = LoadProducer(run.settings, Simulator(config).events(), RATE).start()
    for group in PROJECT_GROUPS:
        run.daemon([group]).start()
    drill = FailoverDrill(local, run.settings, run.engine, producer)
    drill.wait_caught_up()

    busiest = drill.busiest_partition_leader()
    drill.kill("kill -9 leader of the busiest partition", busiest, DOWN_S)
    drill.kill("kill -9 active controller", drill.active_controller(), DOWN_S)
    coordinator = drill.group_coordinator("order-state")
    drill.kill(
        f"node down {SESSION_TIMEOUT_S + 5:.0f} s > session.timeout.ms",
        coordinator,
        SESSION_TIMEOUT_S + 5,
    )

    delivery = producer.stop()
    run.produced = list(producer.sent)
    run.finish(timeout=180)
    reports = [run.report(group) for group in PROJECT_GROUPS]
    copies: Counter[str] = Counter()
    for topic in (CART_TOPIC, ORDER_TOPIC):
        records = read_topic(run.settings, run.settings.topic(topic), 0)
        copies.update(record.event.event_id for record in records)
    drill.account(list(PROJECT_GROUPS), copies)
    with capsys.disabled():  # the table belongs in the CI log, pass or fail
        print("\n" + drill.table(reports, delivery), flush=True)

    assert delivery.ok, delivery.describe()
    assert sum(copies.values()) == len(run.produced), "the log holds extra or missing copies"
    run.assert_exact(reports)
    _status_shows_the_cluster(local)
    for fault in drill.faults:
        assert fault.produce_resumed is not None, f"{fault.name}: producing never resumed"
        assert fault.apply_resumed is not None, f"{fault.name}: applying never resumed"
        assert (fault.lost, fault.duplicated) == (0, 0), fault


def _status_shows_the_cluster(local: LocalStack) -> None:
    """``stack status``: every node, one active controller, nothing under-replicated."""
    state = ["--state-dir", str(local.config.state_dir)]
    env = {**os.environ, "COLUMNS": "250"}
    shown = subprocess.run(
        [SHOPSTREAM, "stack", "status", "--json", *state],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    rows = {row["part"]: row for row in json.loads(shown.stdout)}
    nodes = [rows[name] for name in ("kafka", "kafka-2", "kafka-3")]
    assert all(node["running"] and node["answers"] for node in nodes)
    assert sum(node["active_controller"] for node in nodes) == 1
    assert all(node["under_replicated"] == [] for node in nodes)
    text = subprocess.run(
        [SHOPSTREAM, "stack", "status", *state],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert "Kafka 4.4.0 node 3" in text
    assert re.search(r"active controller: node [123];.*under-replicated partitions: 0", text)
