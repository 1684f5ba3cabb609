"""A scripted stand-in for confluent-kafka's Consumer, for deterministic runtime tests.

Only the Kafka consumer is scripted: the runner under test keeps its real database,
registry and dead-letter producer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from confluent_kafka import Message, Producer, TopicPartition
from sqlalchemy import Engine, select

from consumers.projections.order_state import OrderStateProjection, order_status_history
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.offset_store import OffsetStore
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import ORDER_TOPIC, load_catalog
from shopstream.config import Settings
from shopstream.events import DomainEvent, OrderCreated, OrderLine, OrderPaid
from shopstream.serde import EventSerializer, make_registry_client

Callback = Callable[[Any, list[TopicPartition]], None]


class ScriptedConsumer:
    """What the runner calls on a confluent-kafka Consumer, over an in-memory log.

    ``script[n]`` runs at the start of the n-th ``consume`` call (as librdkafka runs
    rebalance callbacks inside ``consume``); then up to ``num_messages`` messages are
    returned from the assigned, unpaused partitions, round robin. ``stale`` messages
    queued by a step are returned first, whatever the assignment (fetched before a
    revocation). ``on_poll`` steps run one per ``poll`` call (the runner polls while it
    waits out a failure). When the script is done and nothing is left to read, ``done``
    is set.

    Pausing is modelled as librdkafka does it: a partition's pause outlives its
    unassignment, so a partition paused, lost and assigned again stays paused until
    resumed (librdkafka #1849, confluent-kafka-go #193).
    """

    def __init__(
        self, log: dict[int, list[Message]], script: dict[int, Callable[[ScriptedConsumer], None]]
    ) -> None:
        self.log = log
        self.script = script
        self.on_poll: list[Callable[[ScriptedConsumer], None]] = []
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
        if self.on_poll:
            self.on_poll.pop(0)(self)
        time.sleep(min(max(timeout, 0.0), 0.05))  # paused: nothing to return

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions[tp.partition] = max(tp.offset, 0)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)

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
        mirror = Producer(dict(self.settings.kafka_config()))
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
                mirror.produce(
                    self.topic, encoded.value, encoded.key, partition, headers=encoded.headers
                )
        # The same messages at the same offsets on the broker (each partition written
        # once, from offset 0), so the partitions' bounds match the script's log.
        if mirror.flush(30):
            raise RuntimeError("the scripted messages did not reach the broker")

    def runner(self, background: bool, settings: Settings | None = None) -> GroupRunner:
        options = RuntimeOptions(batch_size=7, background_writes=background)
        return GroupRunner(
            settings or self.settings,
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
            stored = OffsetStore("order-state", self.topic).load_all(connection)
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
