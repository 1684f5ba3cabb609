"""The runtime under scripted rebalances: a fake consumer revokes, assigns and loses
partitions in the middle of a batch, at exactly the moment a test chooses.

Only the Kafka consumer is scripted (:class:`ScriptedConsumer`, the Consumer methods
the runner uses, serving real Confluent-framed Avro encoded with the real registry).
The database is real (SQLite, and PostgreSQL with the writer thread, where the batch
in flight is still being written when the rebalance comes), and so is the broker the
dead letters go to. The fault suite hits these interleavings only by chance.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from sqlalchemy import Engine, select

from consumers.projections.order_state import orders
from consumers.runtime import dlq_writer as dlq
from schemas import ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from tests.support.pipeline import read_all
from tests.support.poison import REFUSED_CUSTOMER, install_refusal_trigger
from tests.support.reference import processed_outcomes
from tests.support.scripted import Scene, ScriptedConsumer, orders_for

PARTITIONS = 3


@pytest.fixture
def scene_settings(settings: Settings, unique_name: str, database_url: str) -> Settings:
    prefixed = settings.model_copy(
        update={"shopstream_topic_prefix": f"{unique_name}-", "database_url": database_url}
    )
    admin = AdminClient(dict(prefixed.kafka_config()))
    topic = prefixed.topic(ORDER_TOPIC)
    # The script drives the consumer, but the topic is real: the runner checks the
    # offsets it stores against the partitions' bounds on the broker.
    topics = [NewTopic(topic, PARTITIONS, 1), NewTopic(dlq_topic(topic), 1, 1)]
    for future in admin.create_topics(topics).values():
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
    poison = events[1][4]
    events[2].append(poison)  # re-sent later (same event id): skipped, not dead-lettered again
    stage.write(events)

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
    runner = stage.runner(background(stage))
    stage.run(runner, ScriptedConsumer(stage.log, script))

    outcomes = processed_outcomes(stage.engine, "order-state")
    paid_after_poison = events[1][5]
    assert outcomes.pop(poison.event_id) == "dead-lettered"
    assert outcomes.pop(paid_after_poison.event_id) == "dead-lettered"  # unknown-order
    assert set(outcomes.values()) == {"applied"}
    assert len(outcomes) == len(stage.all_ids()) - 2
    assert runner.events_applied == len(outcomes)  # the re-sent copy was a duplicate
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


def test_partitions_lost_while_paused_for_a_retry_are_read_again_when_assigned_back(
    stage: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stall seen when a broker was killed under load: the dead letters of a batch
    are not confirmed, so the runner pauses its partitions to wait and retry; the group
    session expires meanwhile (partitions lost), and the same partitions come back.
    librdkafka keeps a partition's pause across that, so unless the runner clears it,
    the partitions are assigned back paused and never read again, without a word."""
    stage.write({p: orders_for(p, 6) for p in range(PARTITIONS)})
    runner = stage.runner(background(stage))
    write_all = runner._dlq.write_all
    failures = [dlq.DeadLetterUnavailable("1 of 1 dead letter(s) not confirmed: no answer")]

    def unconfirmed_once(letters: list[dlq.DeadLetter]) -> None:
        if failures:
            raise failures.pop()
        write_all(letters)

    monkeypatch.setattr(runner._dlq, "write_all", unconfirmed_once)
    script: dict[int, Callable[[ScriptedConsumer], None]] = {
        0: lambda c: c.assign(0, 1, 2),
        3: lambda c: c.assign(0, 1, 2),  # the same partitions, back after the loss
    }
    consumer = ScriptedConsumer(stage.log, script)
    consumer.on_poll = [lambda c: c.lose(0, 1, 2)]  # during the wait before the retry
    stage.run(runner, consumer)

    assert not failures, "the dead-letter write never failed: the scene did not happen"
    history = stage.history_ids()
    assert len(history) == len(set(history)) == len(stage.all_ids())
    assert stage.committed() == {p: len(stage.log[p]) for p in range(PARTITIONS)}
