"""``--until-caught-up`` waits for the whole group, not only for its own partitions.

A member killed without leaving keeps its partitions until its session times out, so
a catch-up run that stopped when its own share was done could exit 0 with part of
the topic unapplied. The runner's group check reads every partition's committed
offset in the database against the topic's end offsets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumers.projections.order_state import OrderStateProjection
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.offset_store import OffsetStore
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade

pytestmark = pytest.mark.integration

PARTITIONS = 3
PER_PARTITION = 4


@pytest.fixture
def runner(settings: Settings, unique_name: str) -> Iterator[GroupRunner]:
    prefixed = settings.model_copy(update={"shopstream_topic_prefix": f"{unique_name}-"})
    topic = prefixed.topic(ORDER_TOPIC)
    admin = AdminClient(dict(prefixed.kafka_config()))
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    producer = Producer(dict(prefixed.kafka_config()))
    for partition in range(PARTITIONS):
        for _ in range(PER_PARTITION):
            producer.produce(topic, b"x", partition=partition)
    assert producer.flush(30) == 0
    engine = make_engine(prefixed.database_url)
    upgrade(engine)
    group_runner = GroupRunner(
        prefixed,
        OrderStateProjection(),
        engine,
        ConsumerMetrics(),
        RuntimeOptions(until_caught_up=True),
        threading.Event(),
    )
    group_runner.start()
    yield group_runner
    group_runner.close()
    engine.dispose()
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.exception(timeout=15)


def committed(runner: GroupRunner, offsets: dict[int, int]) -> None:
    store = OffsetStore(runner.group_id, runner.topic)
    with runner._engine.begin() as connection:
        keys = [(runner.topic, p) for p in offsets]
        stored = store.load(connection, keys)
        store.advance(
            connection, {key: (stored[key], offsets[key[1]]) for key in keys if offsets[key[1]]}
        )


def check(runner: GroupRunner) -> bool:
    runner._next_group_check = 0.0  # not rate-limited in the test
    return runner._group_caught_up()


def test_a_partition_nobody_committed_keeps_the_group_behind(runner: GroupRunner) -> None:
    assert not check(runner)  # nothing committed anywhere
    committed(runner, {0: PER_PARTITION, 1: PER_PARTITION})
    assert not check(runner)  # partition 2 (another member's, say) is still at 0


def test_every_partition_at_its_end_is_caught_up(runner: GroupRunner) -> None:
    committed(runner, {0: PER_PARTITION, 1: PER_PARTITION, 2: PER_PARTITION - 1})
    assert not check(runner)
    committed(runner, {2: PER_PARTITION})
    assert check(runner)


def test_the_end_is_the_one_seen_at_the_first_check(runner: GroupRunner) -> None:
    assert not check(runner)  # remembers the end offsets of this moment
    producer = Producer(dict(runner.settings.kafka_config()))
    producer.produce(runner.topic, b"later", partition=0)
    assert producer.flush(30) == 0
    committed(runner, dict.fromkeys(range(PARTITIONS), PER_PARTITION))
    assert check(runner)
