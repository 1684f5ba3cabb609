"""A pipeline under fault injection, and the check that nothing was lost or doubled.

:class:`FaultRun` owns one isolated pipeline (unique topic prefix, its own database),
produces a known list of events, runs real ``shopstream consume`` daemons, lets the
test break things (``kill -9``, broker and database restarts, re-sent events), and
then compares every group's tables, processed events and dead letters with the
reference model in :mod:`tests.support.reference`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import Engine, select

from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.db.models import OrderStatusHistory
from shopstream.events import DomainEvent
from shopstream.kafka.clients import make_producer
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.support.daemons import Daemon, run_until_caught_up
from tests.support.pipeline import create_project_topics, dead_letters
from tests.support.poison import install_refusal_trigger
from tests.support.processes import cli_env
from tests.support.reference import (
    APPLIED,
    dump_group,
    expected_for,
    processed_outcomes,
    table_differences,
)

DECODE_REASONS = {
    "too-short",
    "no-magic-byte",
    "unknown-schema-id",
    "truncated-body",
    "trailing-bytes",
    "bad-body",
    "unknown-record-type",
}


POISONED_TABLES = ("carts", "orders", "sales_orders")
"""Tables that refuse the rows of REFUSED_CUSTOMER in every fault run (a no-op for
runs whose events never name that customer)."""


def simulated_events(
    orders: int, customers: int, seed: int, invalid_rate: float
) -> list[DomainEvent]:
    config = SimulationConfig(
        customers=customers, orders=orders, seed=seed, invalid_rate=invalid_rate
    )
    return list(Simulator(config).events())


@dataclass
class GroupReport:
    group: str
    expected_applied: int
    applied: int
    dead_lettered_expected: int
    db_rejected_expected: int
    dead_letters_distinct: int
    dead_letters_total: int
    lost: int
    applied_twice: int
    table_problems: list[str]


@dataclass
class FaultRun:
    settings: Settings
    groups: Sequence[str]
    workdir: Path
    faults: Counter[str] = field(default_factory=Counter)
    produced: list[DomainEvent] = field(default_factory=list)
    garbage: list[tuple[str, int, int]] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    engine: Engine | None = None

    # -- set-up ------------------------------------------------------------------

    def prepare(self) -> FaultRun:
        create_project_topics(self.settings)
        self.engine = make_engine(self.settings.database_url)
        upgrade(self.engine)
        for table in POISONED_TABLES:
            install_refusal_trigger(self.engine, table)
        return self

    @property
    def env(self) -> dict[str, str]:
        return cli_env(self.settings.endpoint_env())

    def daemon(self, groups: Sequence[str]) -> Daemon:
        index = len(self.daemons)
        daemon = Daemon(self.env, self.workdir / f"daemon-{index}.log", groups=groups)
        self.daemons.append(daemon)
        return daemon

    def produce_garbage(self, count: int) -> None:
        """Messages that are not Confluent-framed Avro (they must be dead-lettered)."""
        producer: Producer = make_producer(self.settings)
        topic = self.settings.topic(ORDER_TOPIC)
        delivered: list[tuple[str, int, int]] = []

        def on_delivery(error: object, message: object) -> None:
            if error is None:
                delivered.append((message.topic(), message.partition(), message.offset()))  # type: ignore[attr-defined]

        for index in range(count):
            producer.produce(
                topic,
                key=f"garbage-{index}".encode(),
                value=b"\x07not avro at all",
                on_delivery=on_delivery,
            )
        producer.flush(30)
        assert len(delivered) == count
        self.garbage.extend(delivered)

    # -- faults ------------------------------------------------------------------

    def kill_and_restart(self, rng: random.Random, daemons: Sequence[Daemon]) -> None:
        """SIGKILL a running daemon at a random instant of its work, then start it again."""
        victim = rng.choice(list(daemons))
        victim.wait_ready()
        time.sleep(rng.uniform(0.0, 0.8))
        victim.kill9()
        self.faults["kill -9 consumer daemon"] += 1
        time.sleep(rng.uniform(0.0, 0.5))
        victim.start()

    def stop_daemons(self) -> None:
        for daemon in self.daemons:
            if daemon.running:
                code = daemon.terminate()
                assert code == 0, f"daemon exited {code}:\n{daemon.log_text()[-2000:]}"

    def finish(self, timeout: float = 300.0) -> None:
        """Stop the fault daemons cleanly, then catch every group up to the end."""
        began = time.monotonic()
        self.stop_daemons()
        stopped = time.monotonic()
        run_until_caught_up(self.groups, self.env, self.workdir / "catch-up.log", timeout)
        print(
            f"[faults] daemons stopped in {stopped - began:.1f}s, "
            f"caught up in {time.monotonic() - stopped:.1f}s"
        )

    # -- verdict -----------------------------------------------------------------

    def report(self, group: str) -> GroupReport:
        assert self.engine is not None
        expected = expected_for(group, self.produced)
        outcomes = processed_outcomes(self.engine, group)
        want_applied = {e for e, o in expected.outcomes.items() if o == APPLIED}
        got_applied = {e for e, o in outcomes.items() if o == APPLIED}
        letters = [r for r in dead_letters(self.settings) if r.group == group]
        by_event = Counter(r.event_id for r in letters if r.event_id)
        problems = table_differences(dump_group(self.engine, group), expected.tables)
        if outcomes != expected.outcomes:
            problems.append("processed_events differ from the reference")
        if set(by_event) != expected.rejected:
            problems.append(
                f"dead letters by event id differ: {len(set(by_event) - expected.rejected)} extra, "
                f"{len(expected.rejected - set(by_event))} missing"
            )
        wrong = [r for r in letters if r.event_id and r.reason != expected.reasons.get(r.event_id)]
        if wrong:
            problems.append(f"{len(wrong)} dead letters with another reason than the reference's")
        undecodable = {(r.topic, r.partition, r.offset) for r in letters if not r.event_id}
        wanted_garbage = set(self.garbage) if group != "cart-projection" else set()
        if undecodable != wanted_garbage:
            problems.append(f"undecodable dead letters {len(undecodable)} != {len(wanted_garbage)}")
        return GroupReport(
            group=group,
            expected_applied=len(want_applied),
            applied=len(got_applied),
            dead_lettered_expected=len(expected.rejected) + len(wanted_garbage),
            db_rejected_expected=sum(1 for r in expected.reasons.values() if r == "db-rejected"),
            dead_letters_distinct=len(by_event) + len(undecodable),
            dead_letters_total=len(letters),
            lost=len(want_applied - got_applied),
            applied_twice=self._applied_twice(group) + len(got_applied - want_applied),
            table_problems=problems,
        )

    def _applied_twice(self, group: str) -> int:
        """Events applied more than once, where a table keeps one row per event."""
        if group != "order-state":
            return 0
        assert self.engine is not None
        history = OrderStatusHistory.__table__
        with self.engine.connect() as connection:
            ids = list(connection.execute(select(history.c.event_id)).scalars())
        return len(ids) - len(set(ids))

    def summary(self, reports: Sequence[GroupReport]) -> str:
        injected = ", ".join(f"{name} x{count}" for name, count in sorted(self.faults.items()))
        distinct = len({e.event_id for e in self.produced})
        lines = [
            "fault-injection summary",
            f"  faults injected: {sum(self.faults.values())} ({injected})",
            f"  events produced: {len(self.produced)} (distinct {distinct}) "
            f"+ {len(self.garbage)} undecodable",
        ]
        for r in reports:
            lines.append(
                f"  {r.group:17s} applied {r.applied}/{r.expected_applied}, dead-lettered "
                f"{r.dead_letters_distinct}/{r.dead_lettered_expected} "
                f"({r.dead_letters_total} DLQ messages, {r.db_rejected_expected} db-rejected), "
                f"lost {r.lost}, applied twice "
                f"{r.applied_twice}, tables {'== reference' if not r.table_problems else 'DIFFER'}"
            )
        return "\n".join(lines)

    def assert_exact(self, reports: Sequence[GroupReport]) -> None:
        for r in reports:
            assert r.lost == 0, f"{r.group}: {r.lost} events lost"
            assert r.applied_twice == 0, f"{r.group}: {r.applied_twice} events applied twice"
            assert not r.table_problems, f"{r.group}: " + "; ".join(r.table_problems[:10])

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill9()
        if self.engine is not None:
            self.engine.dispose()
