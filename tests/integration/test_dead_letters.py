"""The dead-letter writer cannot stop a group: a letter too large to write as it is
goes out with its value cut (and its original size and SHA-256 in headers), and a
broker that does not confirm letters rolls the batch back and has it retried (the
database transaction is never held longer than the writer's wait), until it answers.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumers.projections.order_state import OrderStateProjection
from consumers.runtime import dlq_writer as dlq
from consumers.runtime.dlq_writer import DeadLetter, DeadLetterUnavailable, DeadLetterWriter
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from schemas import ORDER_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.kafka.clients import make_producer
from tests.support.pipeline import create_project_topics, header_texts, read_all
from tests.support.reference import processed_outcomes
from tests.support.scripted import Scene, ScriptedConsumer, orders_for

pytestmark = pytest.mark.integration

HUGE = 999_000


@pytest.fixture
def prefixed(settings: Settings, unique_name: str) -> Settings:
    return settings.model_copy(update={"shopstream_topic_prefix": f"{unique_name}-"})


def test_a_message_too_large_to_dead_letter_as_it_is_goes_out_cut(prefixed: Settings) -> None:
    create_project_topics(prefixed, partitions=1)
    topic = prefixed.topic(ORDER_TOPIC)
    huge = b"\x07" + bytes(range(256)) * (HUGE // 256) + b"x" * (HUGE % 256 - 1)
    assert len(huge) == HUGE
    producer = make_producer(prefixed)
    producer.produce(topic, key=b"huge", value=huge, headers=[("event_type", b"OrderCreated")])
    producer.produce(topic, key=b"small", value=b"\x07tiny")
    assert producer.flush(30) == 0
    engine = make_engine(prefixed.database_url)
    upgrade(engine)
    runner = GroupRunner(
        prefixed,
        OrderStateProjection(),
        engine,
        ConsumerMetrics(),
        RuntimeOptions(until_caught_up=True),
        threading.Event(),
    )
    runner.start()
    try:
        runner.run()
    finally:
        runner.close()
        engine.dispose()
    assert runner.caught_up and runner.events_dead_lettered == 2

    letters = {m.key(): m for m in read_all(prefixed, dlq_topic(topic))}
    cut, small = letters[b"huge"], letters[b"small"]
    headers = header_texts(cut)
    assert headers[dlq.REASON] == "no-magic-byte"
    assert headers[dlq.VALUE_SIZE] == str(HUGE)
    assert headers[dlq.VALUE_SHA256] == hashlib.sha256(huge).hexdigest()
    value = cut.value() or b""
    assert 0 < len(value) < HUGE and huge.startswith(value)
    assert small.value() == b"\x07tiny" and dlq.VALUE_SIZE not in header_texts(small)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def letter(offset: int) -> DeadLetter:
    return DeadLetter("t", 0, offset, b"k", b"v", [], "no-magic-byte", "first byte is 0x07")


def test_a_broker_that_does_not_answer_fails_the_write_in_bounded_time(
    settings: Settings,
) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    writer = DeadLetterWriter(nowhere, "order-state", ack_wait_s=1.0)
    started = time.monotonic()
    with pytest.raises(DeadLetterUnavailable, match="1 of 1 dead letter"):
        writer.write_all([letter(0)])
    assert time.monotonic() - started < 5
    writer.close()


def test_dead_letters_wait_for_the_broker_and_the_batch_is_retried_not_skipped(
    prefixed: Settings, tmp_path: Path
) -> None:
    """The dead letters' broker does not answer: every try of the batch is rolled back
    (nothing committed, the group alive); once it answers, the batch commits and each
    letter is written once."""
    database = prefixed.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'dead-letters.db'}"}
    )
    admin = AdminClient(dict(database.kafka_config()))
    for future in admin.create_topics(
        [NewTopic(dlq_topic(database.topic(ORDER_TOPIC)), 1, 1)]
    ).values():
        future.result(timeout=30)
    engine = make_engine(database.database_url)
    upgrade(engine)
    stage = Scene(database, engine)
    stage.write({0: orders_for(0, 3)})
    garbage = Message(
        topic=stage.topic, partition=0, offset=len(stage.log[0]), key=b"g", value=b"\x07garbage"
    )
    stage.log[0].append(garbage)

    nowhere = database.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    runner = stage.runner(background=False)
    runner._dlq = DeadLetterWriter(nowhere, runner.group_id, ack_wait_s=0.5)
    seen_while_down: list[dict[int, int]] = []

    def broker_back(consumer: ScriptedConsumer) -> None:
        seen_while_down.append(stage.committed())
        runner._dlq.close()
        runner._dlq = DeadLetterWriter(database, runner.group_id)

    script: dict[int, Callable[[ScriptedConsumer], None]] = {
        0: lambda c: c.assign(0),
        6: broker_back,
    }
    stage.run(runner, ScriptedConsumer(stage.log, script))
    engine.dispose()

    assert seen_while_down == [{0: 0}]  # every try rolled back, nothing skipped
    assert stage.committed() == {0: len(stage.log[0])}
    assert set(processed_outcomes(engine, "order-state").values()) == {"applied"}
    letters = read_all(database, dlq_topic(stage.topic))
    assert [m.value() for m in letters] == [b"\x07garbage"]
