"""Broker failover under load: kill Kafka nodes while the simulator produces and the
consumer groups apply, and measure when producing and applying resume.

A :class:`LoadProducer` thread sends the simulator's endless stream through the
project's :class:`EventProducer` (idempotent, acks=all) at a steady rate. For each
fault, :class:`FailoverDrill` records which event-topic partitions the victim led
and their high watermarks, kills the node with SIGKILL, and polls:

* producing resumed: every one of those partitions has a high watermark above its
  value at the kill (an event produced after the kill is acknowledged by the ISR);
* applying resumed: for every group reading those partitions, the offset committed
  in PostgreSQL is past that watermark (an event written after the kill is applied).

Afterwards the node is started again and the drill waits until no partition is
under-replicated before the next fault.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, TopicPartition

# confluent_kafka.admin re-exports OffsetSpec without __all__, and leaves its factories untyped
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from sqlalchemy import Engine, select

from producers.base import DeliveryReport, EventProducer, ProducerOptions
from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.models import ConsumerOffset, OrderStatusHistory
from shopstream.events import DomainEvent
from shopstream.stack import LocalStack
from shopstream.stack.health import active_controller, under_replicated
from tests.support.faults import GroupReport
from tests.support.reference import APPLIED, expected_for, processed_outcomes

POLL_S = 0.25
RECOVERY_LIMIT_S = 60.0
REJOIN_LIMIT_S = 90.0

Partition = tuple[str, int]


class LoadProducer:
    """Send ``events`` at ``rate`` per second in a thread until :meth:`stop`."""

    def __init__(self, settings: Settings, events: Iterator[DomainEvent], rate: float) -> None:
        self._settings = settings
        self._events = events
        self._rate = rate
        self._stop = threading.Event()
        self.sent: list[DomainEvent] = []
        self.error: BaseException | None = None
        self.final: DeliveryReport | None = None
        self._producer: EventProducer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-producer")

    def start(self) -> LoadProducer:
        self._thread.start()
        self._ready.wait(60)
        return self

    def _run(self) -> None:
        try:
            options = ProducerOptions(topic_prefix=self._settings.shopstream_topic_prefix)
            producer = EventProducer(self._settings, options).start()
            self._producer = producer
            self._ready.set()
            began = time.monotonic()
            for count, event in enumerate(self._events, start=1):
                if self._stop.is_set():
                    break
                delay = began + count / self._rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.send(event)
                self.sent.append(event)
            self.final = producer.close()
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    def in_flight(self) -> int:
        """Events handed to the producer and not yet acknowledged or failed."""
        producer = self._producer
        if producer is None:
            return 0
        report = producer.report()
        return report.sent - report.delivered - report.failed

    def stop(self, timeout: float = 150.0) -> DeliveryReport:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error
        assert self.final is not None
        return self.final


class Restart:
    """Start a killed node in a thread, so the recovery is measured while it boots."""

    def __init__(self, local: LocalStack, node: int) -> None:
        self._part = local.broker(node)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"restart-{node}")

    def begin(self) -> Restart:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._part.start()
        except BaseException as exc:
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def check(self) -> None:
        if self._error is not None:
            raise self._error


@dataclass
class Fault:
    """One kill and what followed it."""

    name: str
    node: int
    down_for: float
    in_flight: int = 0
    first_event: int = 0
    """Index (in the sent stream) of the oldest event that may have been in flight."""
    last_event: int = 0
    """Index after the last event sent before producing resumed."""
    partitions: list[Partition] = field(default_factory=list)
    killed_at: float = 0.0
    produce_resumed: float | None = None
    apply_resumed: float | None = None
    rejoined: float | None = None
    lost: int = 0
    duplicated: int = 0


class FailoverDrill:
    def __init__(
        self,
        local: LocalStack,
        settings: Settings,
        engine: Engine,
        producer: LoadProducer,
    ) -> None:
        self.local = local
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.admin = AdminClient({"bootstrap.servers": local.bootstrap_servers, "log_level": 0})
        self.topics = [settings.topic(CART_TOPIC), settings.topic(ORDER_TOPIC)]
        self.faults: list[Fault] = []

    # -- picking a victim ---------------------------------------------------------

    def leaders(self) -> dict[Partition, int]:
        metadata = self.admin.list_topics(timeout=10)
        return {
            (topic, partition.id): partition.leader
            for topic in self.topics
            for partition in metadata.topics[topic].partitions.values()
        }

    def high_watermarks(self, partitions: Sequence[Partition]) -> dict[Partition, int] | None:
        """Latest offsets of ``partitions``, or None while any has no leader to ask.

        A fresh client each time: one that saw a leader die keeps asking it."""
        admin = AdminClient({"bootstrap.servers": self.local.bootstrap_servers, "log_level": 0})
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}  # type: ignore[no-untyped-call]
        try:
            futures = admin.list_offsets(request, request_timeout=2)
            found = {
                (tp.topic, tp.partition): f.result(timeout=5).offset for tp, f in futures.items()
            }
        except (KafkaException, TimeoutError):
            return None
        return found if all(offset >= 0 for offset in found.values()) else None

    def busiest_partition_leader(self) -> int:
        leaders = self.leaders()
        marks = self.high_watermarks(list(leaders)) or {}
        busiest = max(leaders, key=lambda partition: marks.get(partition, -1))
        return leaders[busiest]

    def active_controller(self) -> int:
        controller = active_controller(self.local.brokers)
        assert controller is not None, "no active controller known"
        return controller

    def group_coordinator(self, group: str) -> int:
        futures = self.admin.describe_consumer_groups([self.settings.kafka_group(group)])
        description = next(iter(futures.values())).result(timeout=10)
        return int(description.coordinator.id)

    def wait_caught_up(self, max_lag: int = 50, timeout: float = 120.0) -> None:
        """Wait until each group applied every partition it reads to within ``max_lag``
        events of its end, so a fault's recovery time is not a backlog's drain time."""
        began = time.monotonic()
        partitions = self.leaders()
        per_topic = Counter(topic for topic, _ in partitions)
        while time.monotonic() - began < timeout:
            offsets = self.applied_offsets()
            marks = self.high_watermarks(list(partitions))
            read: dict[str, set[Partition]] = {}
            for group, topic, partition in offsets:
                read.setdefault(group, set()).add((topic, partition))
            complete = len(read) == 3 and all(
                sum(1 for t, _ in parts if t == topic) == per_topic[topic]
                for parts in read.values()
                for topic in {t for t, _ in parts}
            )
            if marks is not None and complete:
                lag = max(marks[key[1:]] - offset for key, offset in offsets.items())
                if lag <= max_lag:
                    return
            time.sleep(0.5)
        offsets = self.applied_offsets()
        raise AssertionError(
            f"the groups did not catch up within {timeout} s: applied {offsets}, "
            f"ends {self.high_watermarks(list(partitions))}"
        )

    # -- one fault ------------------------------------------------------------------

    def applied_offsets(self) -> dict[tuple[str, str, int], int]:
        table = ConsumerOffset.__table__
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.group_id, table.c.topic, table.c.partition, table.c.next_offset)
            ).all()
        return {(g, t, p): int(o) for g, t, p, o in rows}

    def kill(self, name: str, node: int, down_for: float) -> Fault:
        """SIGKILL ``node``, measure the recovery, restart it after ``down_for`` s (in a
        thread: the measuring goes on), and wait until every partition is fully
        replicated again."""
        fault = Fault(name, node, down_for)
        self.wait_caught_up()
        led = [partition for partition, leader in self.leaders().items() if leader == node]
        fault.partitions = led or list(self.leaders())
        marks = self.high_watermarks(fault.partitions)
        assert marks is not None, "partitions without a leader before the fault"
        sent_before = len(self.producer.sent)
        fault.in_flight = self.producer.in_flight()
        fault.first_event = max(0, sent_before - fault.in_flight)
        assert self.local.broker(node).kill() is not None, f"node {node} was not running"
        fault.killed_at = time.monotonic()
        restart: Restart | None = None
        self._log(fault, f"killed node {node}; {len(fault.partitions)} partitions it led")
        next_note = 5.0
        while True:
            elapsed = time.monotonic() - fault.killed_at
            self._observe(fault, marks)
            if elapsed >= next_note:
                next_note += 5.0
                self._log(fault, self._progress(fault, marks))
            if restart is None and elapsed >= down_for:
                self._log(fault, f"restarting node {node} (recovery still measured meanwhile)")
                restart = Restart(self.local, node).begin()
            recovered = fault.apply_resumed is not None
            if restart is not None and restart.done() and (recovered or elapsed > RECOVERY_LIMIT_S):
                restart.check()
                break
            time.sleep(POLL_S)
        fault.last_event = len(self.producer.sent)
        self._wait_fully_replicated(fault)
        self._log(fault, "every partition fully replicated again")
        self.faults.append(fault)
        return fault

    def _observe(self, fault: Fault, marks: dict[Partition, int]) -> None:
        now = time.monotonic() - fault.killed_at
        if fault.produce_resumed is None:
            latest = self.high_watermarks(fault.partitions)
            if latest is not None and all(latest[p] > marks[p] for p in fault.partitions):
                fault.produce_resumed = now
        if fault.produce_resumed is not None and fault.apply_resumed is None:
            offsets = self.applied_offsets()
            readers = [(key, marks[key[1:]]) for key in offsets if key[1:] in marks]
            if readers and all(offsets[key] > mark for key, mark in readers):
                fault.apply_resumed = now

    def _log(self, fault: Fault, message: str) -> None:
        """Progress on the real stderr (the drill runs for minutes)."""
        elapsed = time.monotonic() - fault.killed_at
        print(f"[failover] {fault.name} +{elapsed:.1f}s: {message}", file=sys.__stderr__)

    def _progress(self, fault: Fault, marks: dict[Partition, int]) -> str:
        latest = self.high_watermarks(fault.partitions)
        offsets = self.applied_offsets()
        behind = sorted(
            f"{group}:{topic}[{partition}] {offset}<={marks[(topic, partition)]}"
            for (group, topic, partition), offset in offsets.items()
            if (topic, partition) in marks and offset <= marks[(topic, partition)]
        )
        return (
            f"produce resumed {fault.produce_resumed}, apply resumed {fault.apply_resumed}; "
            f"marks {marks}; latest {latest}; not yet applied past the mark: {behind[:6]}"
        )

    def _wait_fully_replicated(self, fault: Fault) -> None:
        deadline = time.monotonic() + REJOIN_LIMIT_S
        while time.monotonic() < deadline:
            state = under_replicated(self.local.bootstrap_servers)
            if state is not None and not state[0] and state[1] == len(self.local.brokers):
                fault.rejoined = time.monotonic() - fault.killed_at
                return
            time.sleep(0.5)
        raise AssertionError(f"node {fault.node} did not rejoin every ISR in {REJOIN_LIMIT_S} s")

    # -- verdict ------------------------------------------------------------------------

    def account(self, groups: Sequence[str], log_copies: Counter[str]) -> None:
        """Per fault: of the events sent from the oldest one in flight at the kill until
        producing resumed, how many were never applied (lost) or are in the log or a
        table more than once (duplicated)."""
        sent = self.producer.sent
        twice = self._history_duplicates()
        outcomes = {group: processed_outcomes(self.engine, group) for group in groups}
        expected = {group: expected_for(group, sent).outcomes for group in groups}
        for fault in self.faults:
            window = {event.event_id for event in sent[fault.first_event : fault.last_event]}
            fault.lost = sum(
                1
                for group in groups
                for event_id in window
                if expected[group].get(event_id) == APPLIED
                and outcomes[group].get(event_id) != APPLIED
            )
            fault.duplicated = sum(max(0, log_copies[e] - 1) + twice.get(e, 0) for e in window)

    def _history_duplicates(self) -> Counter[str]:
        history = OrderStatusHistory.__table__
        with self.engine.connect() as connection:
            ids = Counter(connection.execute(select(history.c.event_id)).scalars())
        return Counter({event_id: n - 1 for event_id, n in ids.items() if n > 1})

    def table(self, reports: Sequence[GroupReport], delivery: DeliveryReport) -> str:
        lines = [
            "broker failover under load (3 KRaft nodes, RF 3, min ISR 2, acks=all, idempotent)",
            f"  {'fault':44s} {'node':>4s} {'in flight':>9s} {'produce s':>9s} "
            f"{'apply s':>8s} {'ISR full s':>10s} {'lost':>5s} {'dup':>4s}",
        ]
        for f in self.faults:
            lines.append(
                f"  {f.name:44s} {f.node:4d} {f.in_flight:9d} {_seconds(f.produce_resumed):>9s} "
                f"{_seconds(f.apply_resumed):>8s} {_seconds(f.rejoined):>10s} "
                f"{f.lost:5d} {f.duplicated:4d}"
            )
        lines.append(f"  delivery: {delivery.describe()}")
        for r in reports:
            lines.append(
                f"  {r.group:17s} applied {r.applied}/{r.expected_applied}, lost {r.lost}, "
                f"applied twice {r.applied_twice}, "
                f"tables {'== reference' if not r.table_problems else 'DIFFER'}"
            )
        return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
