"""Misconfiguration fails fast and touches nothing; offsets that no longer fit the topic
stop the group with the way out (issue #13, items 4, 5, 7).

Real broker, registry and database; every command runs as a real ``shopstream`` process.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from sqlalchemy import select

from consumers.runtime.offset_store import offsets_table
from schemas import CART_TOPIC, dlq_topic
from shopstream.kafka.clients import make_admin
from tests.e2e.test_projections import PARTITIONS, Pipeline, pipeline, simulated
from tests.e2e.test_rebuild import wait_for_members
from tests.support.pipeline import read_all

__all__ = ["pipeline"]  # the fixture, imported for these tests

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

GROUP = "cart-projection"


def stored_offsets(pipeline: Pipeline) -> dict[tuple[str, int], int]:
    c = offsets_table.c
    with pipeline.engine.connect() as connection:
        rows = connection.execute(
            select(c.topic, c.partition, c.next_offset).where(c.group_id == GROUP)
        ).all()
    return {(row.topic, row.partition): row.next_offset for row in rows}


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def registry_root(url: str, credentials: str = "") -> str:
    """The registry's root URL: ``http://host:port``, without ``/apis/ccompat/v7``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{credentials}{parts.netloc}"


def test_a_registry_url_without_the_api_path_stops_every_command(pipeline: Pipeline) -> None:
    pipeline.produce(simulated(orders=20, seed=3, invalid_rate=0.0))
    wrong = registry_root(pipeline.settings.schema_registry_url, "alice:s3cret@")
    shown = wrong.replace("s3cret", "****")
    pipeline.settings = pipeline.settings.model_copy(update={"schema_registry_url": wrong})
    commands = [
        ("consume", GROUP, "--until-caught-up", "--http-port", "-1"),
        ("consume", "rebuild", GROUP),
        ("produce", "order", "confirm", "--order-id", "o-1"),
        ("schemas", "check"),
        ("inspect", "schemas"),
    ]
    for command in commands:
        result = pipeline.cli(*command, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        line = one_error_line(result.stderr)
        assert f"no Confluent-compatible registry API at {shown}" in line, line
        assert "s3cret" not in result.stdout + result.stderr
    assert stored_offsets(pipeline) == {}
    assert read_all(pipeline.settings, dlq_topic(pipeline.settings.topic(CART_TOPIC))) == []


def test_until_caught_up_on_a_missing_topic_exits_2(pipeline: Pipeline) -> None:
    missing = pipeline.settings.model_copy(
        update={"shopstream_topic_prefix": pipeline.settings.shopstream_topic_prefix + "none-"}
    )
    pipeline.settings = missing
    started = time.monotonic()
    result = pipeline.cli("consume", GROUP, "--until-caught-up", "--http-port", "-1", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert f"topic {missing.topic(CART_TOPIC)} does not exist" in line
    assert time.monotonic() - started < 30


def test_a_member_without_partitions_exits_once_the_group_caught_up(pipeline: Pipeline) -> None:
    recreate(pipeline, partitions=1)  # one partition: the second member gets none
    pipeline.produce(simulated(orders=20, seed=5, invalid_rate=0.0))
    owner = pipeline.start_daemon(GROUP)
    try:
        wait_for_members(pipeline, GROUP)  # the owner holds the partition
        idle = pipeline.cli("consume", GROUP, "--until-caught-up", "--http-port", "-1", timeout=60)
        assert idle.returncode == 0, idle.stdout + idle.stderr
        assert owner.running()
    finally:
        assert owner.stop() == 0, owner.output()


def test_offsets_beyond_the_end_of_a_recreated_topic_stop_the_group(pipeline: Pipeline) -> None:
    pipeline.produce(simulated(orders=30, seed=7, invalid_rate=0.0))
    caught_up(pipeline)
    before = stored_offsets(pipeline)
    assert any(before.values())

    recreate(pipeline, partitions=PARTITIONS)  # empty again: every stored offset > its end
    stopped = pipeline.cli("consume", GROUP, "--until-caught-up", "--http-port", "-1")

    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    line = one_error_line(stopped.stderr)
    topic = pipeline.settings.topic(CART_TOPIC)
    beyond = [p for (_, p), offset in sorted(before.items()) if offset > 0]
    assert f"do not fit the topic: {topic} partition" in line
    for partition in beyond:
        assert f"partition {partition} at {before[(topic, partition)]} beyond its end 0" in line
    assert f"shopstream consume reset-offsets {GROUP} --to earliest|latest" in line
    assert stored_offsets(pipeline) == before

    reset = pipeline.cli("consume", "reset-offsets", GROUP, "--to", "latest")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert set(stored_offsets(pipeline).values()) == {0}
    pipeline.produced.clear()  # the recreated topic's events are all there is now
    pipeline.produce(simulated(orders=10, seed=8, invalid_rate=0.0))
    caught_up(pipeline)
    assert stored_offsets(pipeline) == pipeline.end_offsets(CART_TOPIC)


def test_offsets_before_the_start_of_a_partition_stop_the_group(pipeline: Pipeline) -> None:
    pipeline.produce(simulated(orders=20, seed=9, invalid_rate=0.0))
    caught_up(pipeline)
    before = stored_offsets(pipeline)
    pipeline.produce(simulated(orders=20, seed=10, invalid_rate=0.0))
    ends = pipeline.end_offsets(CART_TOPIC)
    # what retention would do: delete events the group has not applied yet
    deleted = {key: end for key, end in ends.items() if end > before.get(key, 0) > 0}
    assert deleted
    admin = make_admin(pipeline.settings)
    requests = [TopicPartition(t, p, end) for (t, p), end in deleted.items()]
    for future in admin.delete_records(requests).values():
        future.result(timeout=30)

    stopped = pipeline.cli("consume", GROUP, "--until-caught-up", "--http-port", "-1")

    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    line = one_error_line(stopped.stderr)
    for (topic, partition), start in deleted.items():
        at = before[(topic, partition)]
        assert f"partition {partition} at {at} before its start {start}" in line, line
    assert f"shopstream consume rebuild {GROUP}" in line
    assert stored_offsets(pipeline) == before

    reset = pipeline.cli("consume", "reset-offsets", GROUP, "--to", "earliest")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    caught_up(pipeline)
    assert stored_offsets(pipeline) == {key: ends[key] for key in stored_offsets(pipeline)}


def test_reset_offsets_refuses_while_a_member_is_live(pipeline: Pipeline) -> None:
    pipeline.produce(simulated(orders=5, seed=11, invalid_rate=0.0))
    daemon = pipeline.start_daemon(GROUP)
    try:
        pipeline.wait_caught_up([GROUP])
        before = stored_offsets(pipeline)
        deadline = time.monotonic() + 60
        while True:
            refused = pipeline.cli("consume", "reset-offsets", GROUP, "--to", "earliest")
            if refused.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # not joined yet: (harmlessly) reset to where it was
        assert refused.returncode == 1, refused.stdout + refused.stderr
        line = one_error_line(refused.stderr)
        assert f"refusing to reset the offsets of {GROUP}" in line
        assert stored_offsets(pipeline) == before
    finally:
        assert daemon.stop() == 0, daemon.output()


# -- helpers -------------------------------------------------------------------------------


def caught_up(pipeline: Pipeline) -> None:
    result = pipeline.cli("consume", GROUP, "--until-caught-up", "--http-port", "-1")
    assert result.returncode == 0, result.stdout + result.stderr


def recreate(pipeline: Pipeline, partitions: int) -> None:
    """Delete the cart topic and create it again, empty (what a wiped broker looks like)."""
    topic = pipeline.settings.topic(CART_TOPIC)
    admin = make_admin(pipeline.settings)
    admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, f"{topic} was not recreated"
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
            break
        except Exception:  # still marked for deletion
            time.sleep(0.5)
    while True:
        metadata = admin.list_topics(timeout=10).topics.get(topic)
        if metadata is not None and len(metadata.partitions) == partitions:
            return
        assert time.monotonic() < deadline, f"{topic} is not in the metadata"
        time.sleep(0.2)
