"""The runtime under scripted rebalances: a fake consumer revokes, assigns and loses
partitions in the middle of a batch, at exactly the moment a test chooses.

Only the Kafka consumer is scripted (:class:`ScriptedConsumer`, the Consumer methods
the runner uses, serving real Confluent-framed Avro encoded with the real registry).
The database is real (SQLite, and PostgreSQL with the writer thread, where the batch
in flight is still being written when the rebalance comes), and so is the broker the
dead letters go to. The fault suite hits these interleavings only by chance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from sqlalchemy import Engine, select

from consumers import dlq
from consumers.metrics import ConsumerMetrics
from consumers.offsets import OffsetStore
from consumers.order_state import OrderStateProjection, order_status_history, orders
from consumers.runtime import GroupRunner, RuntimeOptions
from schemas import ORDER_TOPIC, dlq_topic, load_catalog
from shopstream.config import Settings
from shopstream.events import DomainEvent, OrderCreated, OrderLine, OrderPaid
from shopstream.serde import EventSerializer, make_registry_client
from tests.support.pipeline import read_all
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger
from tests.support.reference import processed_outcomes

PARTITIONS = 3
Callback = Callable[[Any, list[TopicPartition]], None]


class ScriptedConsumer:
    """What the runner calls on a confluent-kafka Consumer, over an in-memory log.

    ``script[n]`` runs at the start of the n-th ``consume`` call (as librdkafka runs
    rebalance callbacks inside ``consume``); then up to ``num_messages`` messages are
    returned from the assigned, unpaused partitions, round robin. ``stale`` messages
    queued by a step are returned first, whatever the assignment (fetched before a
    revocation). When the script is done and nothing is left to read, ``done`` is set.
    """

    def __init__(
        self, log: dict[int, list[Message]], script: dict[int, Callable[[ScriptedConsumer], None]]
    ) -> None:
        self.log = log
        self.script = script
        self.positions: dict[int, int] = {}
        self.paused: set[int] = set()
        self.stale: list[Message] = []
        self.calls = 0
        self.commits: list[TopicPartition] = []
        self.done = threading.Event()
        self.topic = ""
        self._callbacks: dict[str, Callback] = {}

    # -- the script's verbs ----------------------------------------------------------

    def assign(self, *partitions: int) -> None:
        self._callbacks["on_assign"](self, [TopicPartition(self.topic, p) for p in partitions])

    def revoke(self, *partitions: int) -> None:
        self._callbacks["on_revoke"](self, [TopicPartition(self.topic, p) for p in partitions])

    def lose(self, *partitions: int) -> None:
        self._callbacks["on_lost"](self, [TopicPartition(self.topic, p) for p in partitions])

    # -- the Consumer methods the runner uses --------------------------------------------

    def subscribe(self, topics: list[str], **callbacks: Callback) -> None:
        self.topic = topics[0]
        self._callbacks = callbacks

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        step = self.script.get(self.calls)
        self.calls += 1
        if step is not None:
            step(self)
        out, self.stale = self.stale[:num_messages], self.stale[num_messages:]
        readable = [p for p in sorted(self.positions) if p not in self.paused]
        while len(out) < num_messages and readable:
            for partition in list(readable):
                position = self.positions[partition]
                if position >= len(self.log[partition]):
                    readable.remove(partition)
                    continue
                out.append(self.log[partition][position])
                self.positions[partition] = position + 1
        if not out and self.calls > max(self.script, default=0):
            self.done.set()
        return out

    def poll(self, timeout: float = -1) -> None:
        return None

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions[tp.partition] = max(tp.offset, 0)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self.paused.discard(tp.partition)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p, o) for p, o in sorted(self.positions.items())]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update(tp.partition for tp in partitions)

    def seek(self, tp: TopicPartition) -> None:
        self.positions[tp.partition] = tp.offset

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.extend(offsets)

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.log[tp.partition])

    def close(self) -> None:
        self.positions.clear()


@dataclass
class Scene:
    settings: Settings
    engine: Engine
    events: dict[int, list[DomainEvent]] = field(default_factory=dict)
    log: dict[int, list[Message]] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return self.settings.topic(ORDER_TOPIC)

    def write(self, events: dict[int, list[DomainEvent]]) -> None:
        """``events`` per partition, encoded with the real registry."""
        catalog = load_catalog().with_topic_prefix(self.settings.shopstream_topic_prefix)
        serializer = EventSerializer(
            make_registry_client(self.settings.registry_config()), catalog=catalog
        )
        for partition, items in events.items():
            self.events[partition] = items
            self.log[partition] = []
            for offset, event in enumerate(items):
                encoded = serializer.encode(event)
                self.log[partition].append(
                    Message(
                        topic=self.topic,
                        partition=partition,
                        offset=offset,
                        key=encoded.key,
                        value=encoded.value,
                        headers=encoded.headers,
                    )
                )

    def runner(self, background: bool) -> GroupRunner:
        options = RuntimeOptions(batch_size=7, background_writes=background)
        return GroupRunner(
            self.settings,
            OrderStateProjection(),
            self.engine,
            ConsumerMetrics(),
            options,
            threading.Event(),
        )

    def run(self, runner: GroupRunner, consumer: ScriptedConsumer) -> None:
        """Run ``runner`` with ``consumer`` until the script is done and read out."""
        runner.start(consumer)  # type: ignore[arg-type]
        watcher = threading.Thread(target=lambda: (consumer.done.wait(60), runner._stop.set()))
        watcher.start()
        try:
            runner.run()
        finally:
            runner.close()
            watcher.join()
        assert consumer.done.is_set(), "the script did not finish"

    def all_ids(self) -> set[str]:
        return {e.event_id for items in self.events.values() for e in items}

    def history_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(order_status_history.c.event_id)).scalars())

    def committed(self) -> dict[int, int]:
        with self.engine.connect() as connection:
            stored = OffsetStore("order-state").load_all(connection)
        return {p: offset for (_, p), offset in stored.items()}


def orders_for(partition: int, count: int, customer: str = "cust") -> list[DomainEvent]:
    events: list[DomainEvent] = []
    for index in range(count):
        line = OrderLine("SKU-1", 1, Decimal("4.00"))
        order_id = f"p{partition}-o{index}-{customer}"
        events.append(
            OrderCreated(
                order_id=order_id,
                customer_id=customer,
                lines=(line,),
                total=line.amount,
                currency="EUR",
            )
        )
        events.append(
            OrderPaid(order_id=order_id, payment_id="pay", amount=line.amount, currency="EUR")
        )
    return events


@pytest.fixture
def scene_settings(settings: Settings, unique_name: str, database_url: str) -> Settings:
    prefixed = settings.model_copy(
        update={"shopstream_topic_prefix": f"{unique_name}-", "database_url": database_url}
    )
    admin = AdminClient(dict(prefixed.kafka_config()))
    dead_letters = dlq_topic(prefixed.topic(ORDER_TOPIC))
    for future in admin.create_topics([NewTopic(dead_letters, 1, 1)]).values():
        future.result(timeout=30)
    return prefixed


pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True),
]


@pytest.fixture
def stage(scene_settings: Settings, engine: Engine) -> Scene:
    return Scene(scene_settings, engine)


def background(stage: Scene) -> bool:
    """The writer thread where the daemon uses it (PostgreSQL): a batch stays in flight."""
    return stage.engine.dialect.name == "postgresql"


def test_revoke_mid_batch_commits_the_batch_in_hand_and_ignores_stale_messages(
    stage: Scene,
) -> None:
    stage.write({p: orders_for(p, 6) for p in range(PARTITIONS)})

    def revoke_one(consumer: ScriptedConsumer) -> None:
        consumer.revoke(1)
        # messages of partition 1 fetched before the revocation still come out
        consumer.stale = stage.log[1][2:6]

    script: dict[int, Callable[[ScriptedConsumer], None]] = {
        0: lambda c: c.assign(0, 1, 2),
        2: revoke_one,
        5: lambda c: c.assign(1),
    }
    consumer = ScriptedConsumer(stage.log, script)
    runner = stage.runner(background(stage))
    stage.run(runner, consumer)

    history = stage.history_ids()
    assert len(history) == len(set(history)) == len(stage.all_ids())
    assert stage.committed() == {p: len(stage.log[p]) for p in range(PARTITIONS)}
    assert set(processed_outcomes(stage.engine, "order-state").values()) == {"applied"}


def test_a_zombie_that_lost_its_partition_to_a_successor_commits_nothing_of_it(
    stage: Scene,
) -> None:
    """Member A reads partitions 0 and 1; member B is given partition 1 and commits it
    while A still reads it (A has not seen the rebalance yet); A's next batch fails its
    compare-and-set, is rolled back and re-read, then A learns it lost partition 1."""
    stage.write({p: orders_for(p, 8) for p in range(2)})
    successor = stage.runner(background=False)
    successor_consumer = ScriptedConsumer(stage.log, {0: lambda c: c.assign(1)})

    def successor_takes_partition_1(consumer: ScriptedConsumer) -> None:
        stage.run(successor, successor_consumer)

    script: dict[int, Callable[[ScriptedConsumer], None]] = {
        0: lambda c: c.assign(0, 1),
        2: successor_takes_partition_1,
        5: lambda c: c.lose(1),
    }
    zombie = stage.runner(background(stage))
    stage.run(zombie, ScriptedConsumer(stage.log, script))

    history = stage.history_ids()
    assert len(history) == len(set(history)) == len(stage.all_ids())
    assert stage.committed() == {0: len(stage.log[0]), 1: len(stage.log[1])}
    assert successor.events_applied > 0 and zombie.events_applied > 0
    assert successor.events_applied + zombie.events_applied == len(stage.all_ids())


def test_a_poison_event_in_a_batch_revoked_in_flight_is_dead_lettered_once(
    stage: Scene,
) -> None:
    install_refusal_trigger(stage.engine, "orders")
    events = {p: orders_for(p, 5) for p in range(PARTITIONS)}
    events[1][4:6] = orders_for(1, 1, customer=REFUSED_CUSTOMER)
    stage.write(events)
    poison = events[1][4]

    def revoke_and_reread(consumer: ScriptedConsumer) -> None:
        consumer.revoke(1)
        consumer.stale = stage.log[1][:]  # the whole partition again, already fetched

    script: dict[int, Callable[[ScriptedConsumer], None]] = {
        0: lambda c: c.assign(0, 1, 2),
        2: revoke_and_reread,
        4: lambda c: c.assign(1),
        6: lambda c: c.lose(0),
        7: lambda c: c.assign(0),
    }
    stage.run(stage.runner(background(stage)), ScriptedConsumer(stage.log, script))

    outcomes = processed_outcomes(stage.engine, "order-state")
    paid_after_poison = events[1][5]
    assert outcomes.pop(poison.event_id) == "dead-lettered"
    assert outcomes.pop(paid_after_poison.event_id) == "dead-lettered"  # unknown-order
    assert set(outcomes.values()) == {"applied"}
    assert len(outcomes) == len(stage.all_ids()) - 2
    with stage.engine.connect() as connection:
        customers = set(connection.execute(select(orders.c.customer_id)).scalars())
    assert REFUSED_CUSTOMER not in customers
    letters = read_all(stage.settings, dlq_topic(stage.topic))
    reasons = {}
    for message in letters:
        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        reasons[headers[dlq.EVENT_ID]] = headers[dlq.REASON]
        if headers[dlq.REASON] == "db-rejected":
            assert headers[dlq.DB_CODE] in ("23514", "SQLITE_CONSTRAINT_TRIGGER")
            assert "refused by the test trigger" in headers[dlq.DB_MESSAGE]
    assert len(letters) == 2
    assert reasons == {poison.event_id: "db-rejected", paid_after_poison.event_id: "unknown-order"}
