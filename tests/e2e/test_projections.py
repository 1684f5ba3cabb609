"""End to end: simulated shoppers → Kafka → three ``shopstream consume`` groups → tables
that equal what the produced events imply (tests/support/reference.py), on SQLite and
PostgreSQL. The helpers here are shared with test_rebuild.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from sqlalchemy import Engine

from consumers.runtime.dlq_writer import EVENT_ID, GROUP, REASON
from consumers.runtime.offset_store import OffsetStore
from producers.base import EventProducer, ProducerOptions
from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import (
    CartCheckedOut,
    CartEvent,
    CartItemAdded,
    CartItemRemoved,
    DomainEvent,
    OrderEvent,
)
from shopstream.kafka.clients import make_reader
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.simulation.simulator import SimulationConfig, Simulator, invalid_kind
from tests.support.reference import (
    GROUPS,
    dump_group,
    expected_for,
    processed_outcomes,
    table_differences,
)

pytestmark = [pytest.mark.e2e]

PARTITIONS = 3
TOPIC_OF_GROUP = {
    "order-state": ORDER_TOPIC,
    "cart-projection": CART_TOPIC,
    "sales-projection": ORDER_TOPIC,
}


# -- the pipeline under test ------------------------------------------------------------


@dataclass
class Pipeline:
    """Isolated topics and groups (a unique prefix), one database, the events produced."""

    settings: Settings
    engine: Engine
    workdir: Path
    produced: list[DomainEvent] = field(default_factory=list)

    def produce(self, events: Sequence[DomainEvent]) -> None:
        options = ProducerOptions(topic_prefix=self.settings.shopstream_topic_prefix)
        producer = EventProducer(self.settings, options).start()
        try:
            producer.send_all(events)
        finally:
            report = producer.close()
        report.raise_if_failed()
        self.produced.extend(events)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
            "DATABASE_URL": self.settings.database_url,
            "SHOPSTREAM_TOPIC_PREFIX": self.settings.shopstream_topic_prefix,
            "LOG_LEVEL": "WARNING",
        }

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shopstream_exe(), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_daemon(self, *groups: str) -> Daemon:
        log_path = self.workdir / f"{'+'.join(groups)}-{time.monotonic_ns()}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [shopstream_exe(), "consume", *groups, "--http-port", "-1", "--batch-wait", "0.1"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return Daemon(groups, process, log, log_path)

    def end_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        physical = self.settings.topic(topic)
        reader = make_reader(self.settings)
        try:
            return {
                (physical, p): reader.get_watermark_offsets(
                    TopicPartition(physical, p), timeout=10
                )[1]
                for p in range(PARTITIONS)
            }
        finally:
            reader.close()

    def caught_up(self, group: str) -> bool:
        ends = self.end_offsets(TOPIC_OF_GROUP[group])
        with self.engine.connect() as connection:
            topic = self.settings.topic(TOPIC_OF_GROUP[group])
            stored = OffsetStore(group, topic).load_all(connection)
        return all(stored.get(key, 0) >= end for key, end in ends.items())

    def wait_caught_up(self, groups: Sequence[str], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.caught_up(group) for group in groups):
            if time.monotonic() > deadline:
                raise AssertionError(f"groups {groups} did not catch up in {timeout} s")
            time.sleep(0.3)

    def dump_all(self) -> dict[str, object]:
        return {group: dump_group(self.engine, group) for group in GROUPS}

    def assert_matches_reference(self, group: str) -> None:
        expected = expected_for(group, self.produced)
        problems = table_differences(dump_group(self.engine, group), expected.tables)
        assert problems == [], f"{group}: {problems}"
        assert processed_outcomes(self.engine, group) == expected.outcomes


@dataclass
class Daemon:
    groups: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log: IO[str]
    log_path: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            self.log.close()
        return code

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait(30)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def shopstream_exe() -> str:
    beside = Path(sys.executable).with_name("shopstream")
    return str(beside) if beside.exists() else shutil.which("shopstream") or "shopstream"


@pytest.fixture
def pipeline(stack: Any, database_url: str, unique_name: str, tmp_path: Path) -> Iterator[Pipeline]:
    settings = Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=database_url,
        shopstream_topic_prefix=f"{unique_name}-",
    )
    create_topics(settings, project_topics(PARTITIONS, 1, settings.shopstream_topic_prefix))
    engine = make_engine(database_url)
    upgrade(engine)
    yield Pipeline(settings, engine, tmp_path)
    engine.dispose()


# -- workloads ----------------------------------------------------------------------------


def simulated(orders: int, seed: int, invalid_rate: float = 0.04) -> list[DomainEvent]:
    config = SimulationConfig(customers=40, orders=orders, seed=seed, invalid_rate=invalid_rate)
    return list(Simulator(config).events())


def with_resends(
    events: Sequence[DomainEvent], rng: random.Random, rate: float
) -> list[DomainEvent]:
    """``events`` with some re-sent right after themselves (same event_id)."""
    out: list[DomainEvent] = []
    for event in events:
        out.append(event)
        if rng.random() < rate:
            out.append(event)
    return out


def cart_edge_cases(events: Sequence[DomainEvent]) -> list[DomainEvent]:
    """Refusals the simulator does not inject: currency, customer, unknown and empty carts."""
    added = next(e for e in events if isinstance(e, CartItemAdded))
    later = max(e.occurred_at for e in events) + timedelta(seconds=1)
    common: dict[str, Any] = {"occurred_at": later, "correlation_id": "edge"}
    return [
        CartItemAdded(
            cart_id="edge-cart",
            customer_id="edge",
            sku="X",
            quantity=1,
            unit_price=Decimal("1.00"),
            currency="EUR",
            **common,
        ),
        CartItemAdded(
            cart_id="edge-cart",
            customer_id="edge",
            sku="Y",
            quantity=1,
            unit_price=Decimal("1.00"),
            currency="USD",
            **common,
        ),
        CartItemAdded(
            cart_id="edge-cart",
            customer_id="someone-else",
            sku="X",
            quantity=1,
            unit_price=Decimal("1.00"),
            currency="EUR",
            **common,
        ),
        CartItemRemoved(cart_id="edge-cart", customer_id="edge", sku="X", quantity=1, **common),
        CartCheckedOut(cart_id="edge-cart", customer_id="edge", order_id="edge-o", **common),
        CartCheckedOut(cart_id="never-seen", customer_id="edge", order_id="edge-o2", **common),
        CartItemRemoved(
            cart_id=added.cart_id, customer_id=added.customer_id, sku="NOPE", quantity=1, **common
        ),
    ]


def dead_letter_reasons(settings: Settings, topic: str) -> dict[tuple[str, str], str]:
    """(group, event_id) → reason of every dead letter in ``topic``'s DLQ."""
    physical = dlq_topic(settings.topic(topic))
    reader = make_reader(settings)
    reasons: dict[tuple[str, str], str] = {}
    try:
        reader.assign([TopicPartition(physical, 0, 0)])
        while True:
            message = reader.poll(10)
            if message is None:
                raise AssertionError(f"no end of partition on {physical}")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return reasons
                continue
            headers = {k: _text(v) for k, v in _header_pairs(message.headers())}
            reasons[(headers[GROUP], headers.get(EVENT_ID, ""))] = headers[REASON]
    finally:
        reader.close()


def _header_pairs(headers: Any) -> list[tuple[str, Any]]:
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or [])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


# -- tests --------------------------------------------------------------------------------


def test_three_groups_materialize_what_the_events_imply(pipeline: Pipeline) -> None:
    events = simulated(orders=220, seed=11)
    events = with_resends(events, random.Random(5), rate=0.03)
    events += cart_edge_cases(events)
    pipeline.produce(events)
    assert len(pipeline.produced) > 2000

    done = pipeline.cli("consume", *GROUPS, "--until-caught-up", "--http-port", "-1", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr

    for group in GROUPS:
        pipeline.assert_matches_reference(group)

    # the refusals are in the DLQ, with their reasons
    for group in GROUPS:
        topic = TOPIC_OF_GROUP[group]
        letters = dead_letter_reasons(pipeline.settings, topic)
        got = {event_id: reason for (g, event_id), reason in letters.items() if g == group}
        assert got == expected_for(group, pipeline.produced).reasons, group

    # the simulator's invalid events are exactly the ones refused (plus our edge cases)
    for group in GROUPS:
        kind = OrderEvent if TOPIC_OF_GROUP[group] == ORDER_TOPIC else CartEvent
        rejected = expected_for(group, pipeline.produced).rejected
        marked = {e.event_id for e in pipeline.produced if isinstance(e, kind) and invalid_kind(e)}
        edge = {e.event_id for e in pipeline.produced if e.correlation_id == "edge"}
        assert marked <= rejected
        assert rejected - marked <= edge, group

    summary = pipeline.cli("query", "summary", "--format", "json")
    assert summary.returncode == 0, summary.stderr
    answer = json.loads(summary.stdout)
    sales = expected_for("sales-projection", pipeline.produced).tables["product_sales"]
    revenue = sum((row["revenue"] for row in sales), Decimal(0))
    assert sum(Decimal(r["revenue"]) for r in answer["revenue"]) == revenue
    carts = expected_for("cart-projection", pipeline.produced).tables["carts"]
    counts = answer["carts"]
    assert counts["active"] + counts["abandoned"] + counts["checked_out"] == len(carts)
    assert counts["abandoned"] > 0


def test_groups_in_separate_processes_resume_where_they_stopped(pipeline: Pipeline) -> None:
    events = simulated(orders=120, seed=3)
    half = len(events) // 2
    pipeline.produce(events[:half])
    daemons = [pipeline.start_daemon(group) for group in GROUPS]
    try:
        pipeline.wait_caught_up(GROUPS)
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.output()
        pipeline.produce(events[half:])
        daemons = [pipeline.start_daemon(group) for group in GROUPS]
        pipeline.wait_caught_up(GROUPS)
        for group in GROUPS:
            pipeline.assert_matches_reference(group)
    finally:
        for daemon in daemons:
            daemon.kill()
