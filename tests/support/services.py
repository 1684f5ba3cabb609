"""The shop's services as real processes, and the end-to-end verdict on what they published.

:class:`ServiceProcess` runs ``python -m shopstream serve`` (or ``relay``) on a free
127.0.0.1 port in its own session, logs to a file, and can be ``kill -9``'d or
stopped with SIGTERM. :func:`outbox_verdict` compares the outbox (every event the
service committed), the topics and the consumer groups' read models.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select

from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.models import OutboxRow
from shopstream.events import DomainEvent, event_from_json
from tests.support.daemons import run_until_caught_up
from tests.support.processes import CliProcess, cli_env
from tests.support.readback import read_topic
from tests.support.reference import (
    APPLIED,
    GROUPS,
    dump_group,
    expected_for,
    processed_outcomes,
    table_differences,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess(CliProcess):
    """``shopstream serve`` (``command="serve"``) or ``shopstream relay``."""

    command: str = "serve"
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)

    @property
    def name(self) -> str:
        return self.command

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> ServiceProcess:
        port_flag = "--port" if self.command == "serve" else "--http-port"
        self.spawn([self.command, port_flag, str(self.port), *self.args])
        if ready_timeout > 0:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"{self.command} exited:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.command} not ready in {timeout}s:\n{self.log_text()[-3000:]}")


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    return cli_env(settings.endpoint_env(), extra)


# -- what the service committed, what Kafka holds, what the read models say ----------

outbox_table = OutboxRow.__table__


def committed_events(engine: Engine) -> list[DomainEvent]:
    """Every event in the outbox, in id order (each aggregate's commit order)."""
    with engine.connect() as connection:
        payloads = connection.execute(
            select(outbox_table.c.payload).order_by(outbox_table.c.id)
        ).scalars()
        return [event_from_json(json.loads(payload)) for payload in payloads]


def wait_outbox_drained(engine: Engine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            pending = connection.execute(
                select(func.count())
                .select_from(outbox_table)
                .where(outbox_table.c.sent_at.is_(None))
            ).scalar_one()
        if pending == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"outbox still has {pending} pending rows after {timeout}s")


@dataclass
class Verdict:
    committed: int
    in_kafka: int
    distinct_in_kafka: int
    lost: list[str]
    invented: list[str]
    reordered: list[str]
    group_problems: dict[str, list[str]]

    @property
    def duplicated(self) -> int:
        return self.in_kafka - self.distinct_in_kafka

    def summary(self) -> str:
        return (
            f"committed {self.committed}, in Kafka {self.in_kafka} "
            f"(distinct {self.distinct_in_kafka}, duplicated {self.duplicated}), "
            f"lost {len(self.lost)}, invented {len(self.invented)}, "
            f"aggregates reordered {len(self.reordered)}, "
            f"read models {self._read_models()}"
        )

    def _read_models(self) -> str:
        if not self.group_problems:
            return "not checked"
        return "DIFFER" if any(self.group_problems.values()) else "== reference"

    def assert_exact(self) -> None:
        assert not self.lost, f"{len(self.lost)} committed events never reached Kafka"
        assert not self.invented, f"{len(self.invented)} events in Kafka were never committed"
        assert not self.reordered, f"aggregates out of commit order: {self.reordered[:5]}"
        for group, problems in self.group_problems.items():
            assert not problems, f"{group}: " + "; ".join(problems[:10])


def outbox_verdict(
    settings: Settings, engine: Engine, workdir: Path, *, read_models: bool = True
) -> Verdict:
    """Compare the outbox with both topics, then (``read_models``) run every consumer
    group to the end and compare its tables with the reference model folded from the
    outbox."""
    wait_outbox_drained(engine)
    committed = committed_events(engine)
    prefix = settings.shopstream_topic_prefix
    read = [
        message
        for topic in (CART_TOPIC, ORDER_TOPIC)
        for message in read_topic(
            settings,
            prefix + topic,
            sum(1 for e in committed if (e.aggregate_field == "cart_id") == (topic == CART_TOPIC)),
        )
    ]
    committed_ids = {e.event_id for e in committed}
    kafka_ids = Counter(m.event.event_id for m in read)
    first_seen: dict[str, list[str]] = defaultdict(list)
    for message in read:  # partition/offset order: one aggregate lives on one partition
        ids = first_seen[message.key]
        if message.event.event_id not in ids:
            ids.append(message.event.event_id)
    wanted: dict[str, list[str]] = defaultdict(list)
    for event in committed:
        wanted[event.key].append(event.event_id)
    reordered = [key for key, ids in wanted.items() if first_seen.get(key) != ids]
    problems: dict[str, list[str]] = {}
    if read_models:
        run_until_caught_up(GROUPS, service_env(settings), workdir / "consumers.log")
    for group in GROUPS if read_models else ():
        expected = expected_for(group, committed)
        found = table_differences(dump_group(engine, group), expected.tables)
        outcomes = processed_outcomes(engine, group)
        if set(outcomes.values()) - {APPLIED}:
            found.append(f"{Counter(outcomes.values())} (every service event must apply)")
        if outcomes != expected.outcomes:
            found.append("processed_events differ from the reference")
        problems[group] = found
    return Verdict(
        committed=len(committed),
        in_kafka=len(read),
        distinct_in_kafka=len(kafka_ids),
        lost=sorted(committed_ids - set(kafka_ids)),
        invented=sorted(set(kafka_ids) - committed_ids),
        reordered=reordered,
        group_problems=problems,
    )
