"""``shopstream inspect ...`` against the real broker and registry.

Each test creates its own topics (unique names), produces known events with the
project's serializer and explicit partitions and timestamps, runs the command
in-process with ``--format json`` and checks the parsed output against what it produced.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import Schema
from sqlalchemy import create_engine, insert
from typer.testing import CliRunner

from schemas import load_catalog
from shopstream.cli.app import app
from shopstream.config import Settings
from shopstream.errors import ConnectionFailed, UsageError
from shopstream.events import DomainEvent, OrderCreated, OrderLine, OrderPaid, OrderShipped
from shopstream.inspection.db_offsets import CONSUMER_OFFSETS
from shopstream.serde import EventSerializer, make_registry_client

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
INSPECT_GROUP = "shopstream-inspect-never-joins"


# -- producing test data ------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    key: str
    timestamp_ms: int
    event: DomainEvent | None
    value: bytes
    headers: dict[str, str]


@dataclass
class TopicData:
    name: str
    partitions: int
    sent: list[Sent] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    """When the data was made: message timestamps are relative to it, not to import time."""

    def minutes_ago(self, minutes: int) -> int:
        return ms(self.now - timedelta(minutes=minutes))

    def at(self, partition: int, offset: int) -> Sent:
        return next(s for s in self.sent if (s.partition, s.offset) == (partition, offset))

    def coordinates(self, predicate: Any = None) -> list[tuple[int, int]]:
        return sorted(
            (s.partition, s.offset) for s in self.sent if predicate is None or predicate(s)
        )

    def end(self, partition: int) -> int:
        return 1 + max((s.offset for s in self.sent if s.partition == partition), default=-1)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def admin(settings: Settings) -> AdminClient:
    return AdminClient(dict(settings.kafka_config()))


def create_topic(
    admin: AdminClient, name: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        topic = admin.list_topics(timeout=5).topics.get(name)
        if (
            topic
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} has no leaders")


def delete_topics(admin: AdminClient, *names: str) -> None:
    for future in admin.delete_topics(list(names), operation_timeout=10).values():
        with contextlib.suppress(Exception):  # best-effort cleanup
            future.result(timeout=15)


class Sender:
    """Produces events (or raw bytes) to explicit partitions and records where they landed."""

    def __init__(self, settings: Settings, data: TopicData) -> None:
        self.data = data
        self.serializer = EventSerializer(make_registry_client(settings.registry_config()))
        self.producer = Producer({**settings.kafka_config(), "linger.ms": 0})

    def event(
        self,
        partition: int,
        event: DomainEvent,
        at: datetime,
        headers: dict[str, str] | None = None,
    ) -> Sent:
        encoded = self.serializer.encode(event)
        all_headers = {name: value.decode() for name, value in encoded.headers}
        all_headers.update(headers or {})
        return self.raw(partition, encoded.key.decode(), encoded.value, at, all_headers, event)

    def raw(
        self,
        partition: int,
        key: str,
        value: bytes,
        at: datetime,
        headers: dict[str, str],
        event: DomainEvent | None = None,
    ) -> Sent:
        delivered: list[Any] = []
        self.producer.produce(
            self.data.name,
            key=key.encode(),
            value=value,
            partition=partition,
            timestamp=ms(at),
            headers=[(k, v.encode()) for k, v in headers.items()],
            on_delivery=lambda err, msg: delivered.append((err, msg)),
        )
        self.producer.flush(15)
        error, message = delivered[0]
        assert error is None, error
        sent = Sent(partition, message.offset(), key, ms(at), event, value, headers)
        self.data.sent.append(sent)
        return sent


def order_created(order_id: str) -> OrderCreated:
    line = OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("12.34"))
    return OrderCreated(
        order_id=order_id,
        customer_id="cust-1",
        lines=(line,),
        total=Decimal("24.68"),
        currency="EUR",
        occurred_at=NOW,
    )


def order_paid(order_id: str) -> OrderPaid:
    return OrderPaid(
        order_id=order_id,
        payment_id=f"pay-{order_id}",
        amount=Decimal("24.68"),
        currency="EUR",
        occurred_at=NOW,
    )


@pytest.fixture
def orders(settings: Settings, admin: AdminClient, unique_name: str) -> Iterator[TopicData]:
    """3 partitions: p0 holds 4 events, p1 holds 3, p2 is empty; timestamps spread over 3h."""
    data = TopicData(unique_name, 3)
    create_topic(admin, data.name, 3, {"retention.ms": "86400000"})
    sender = Sender(settings, data)
    now = data.now
    sender.event(0, order_created("o-1"), now - timedelta(hours=3))
    sender.event(0, order_paid("o-1"), now - timedelta(hours=2))
    sender.event(0, order_created("o-3"), now - timedelta(minutes=30))
    sender.event(0, order_paid("o-3"), now - timedelta(minutes=10))
    sender.event(1, order_created("o-2"), now - timedelta(hours=3))
    sender.event(1, order_paid("o-2"), now - timedelta(minutes=20))
    sender.event(
        1,
        OrderShipped(order_id="o-2", carrier="DHL", tracking_number="T1", occurred_at=now),
        now - timedelta(minutes=5),
    )
    yield data
    delete_topics(admin, data.name)


# -- running the CLI in-process ------------------------------------------------------------


def cli_args(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers",
        settings.kafka_bootstrap_servers,
        "--registry-url",
        settings.schema_registry_url,
        "--database-url",
        settings.database_url,
    ]


def cli_env(settings: Settings) -> dict[str, str]:
    return {"SHOPSTREAM_TOPIC_PREFIX": settings.shopstream_topic_prefix}


def run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(app, [*cli_args(settings), "inspect", *args], env=cli_env(settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout


def run_json(settings: Settings, *args: str) -> Any:
    return json.loads(run(settings, *args, "--format", "json"))


def fails(settings: Settings, *args: str) -> BaseException:
    result = CliRunner().invoke(app, [*cli_args(settings), "inspect", *args], env=cli_env(settings))
    assert result.exception is not None, result.output
    return result.exception


def coordinates_of(messages: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted((m["partition"], m["offset"]) for m in messages)


def assert_matches_sent(message: dict[str, Any], data: TopicData) -> None:
    sent = data.at(message["partition"], message["offset"])
    assert sent.event is not None
    assert message["topic"] == data.name
    assert message["key"] == sent.key
    assert message["timestamp_ms"] == sent.timestamp_ms
    assert message["headers"] == sent.headers
    assert message["event_type"] == sent.event.event_type
    assert message["event"] == sent.event.to_json()
    assert "error" not in message
    spec = load_catalog().get(sent.event.event_type)
    assert message["subject"] == spec.subject()
    assert isinstance(message["version"], int) and message["version"] >= 1
    assert message["schema_id"] == int.from_bytes(sent.value[1:5], "big")


# -- topics ---------------------------------------------------------------------------------


def test_topics_lists_partitions_and_message_counts(settings: Settings, orders: TopicData) -> None:
    topics = run_json(settings, "topics")
    mine = [t for t in topics if t["topic"] == orders.name]
    assert mine == [{"topic": orders.name, "partitions": 3, "messages": 7}]
    assert not any(t["topic"].startswith("__") for t in topics)
    assert any(t["topic"] == "__consumer_offsets" for t in run_json(settings, "topics", "--all"))


def test_topic_shows_offsets_timestamps_leaders_and_configs(
    settings: Settings, orders: TopicData
) -> None:
    detail = run_json(settings, "topic", orders.name)
    assert detail["topic"] == orders.name
    assert detail["messages"] == 7
    by_partition = {p["partition"]: p for p in detail["partitions"]}
    assert sorted(by_partition) == [0, 1, 2]
    for pid in (0, 1):
        part = by_partition[pid]
        sent = sorted((s for s in orders.sent if s.partition == pid), key=lambda s: s.offset)
        assert (part["start"], part["end"], part["messages"]) == (0, len(sent), len(sent))
        assert part["first_timestamp"] == iso(sent[0].timestamp_ms)
        assert part["last_timestamp"] == iso(sent[-1].timestamp_ms)
        assert part["leader"] >= 0 and part["replicas"] == [part["leader"]]
    empty = by_partition[2]
    assert (empty["start"], empty["end"], empty["first_timestamp"]) == (0, 0, None)
    assert detail["configs"]["retention.ms"] == {
        "value": "86400000",
        "source": "dynamic_topic_config",
    }


def iso(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_topic_unknown_is_a_usage_error_and_is_not_created(
    settings: Settings, admin: AdminClient, unique_name: str
) -> None:
    error = fails(settings, "topic", unique_name)
    assert isinstance(error, UsageError)
    assert unique_name in error.message and "inspect topics" in error.message
    error = fails(settings, "peek", unique_name)
    assert isinstance(error, UsageError)
    assert unique_name not in admin.list_topics(timeout=5).topics


# -- peek: every offset form ----------------------------------------------------------------


OFFSET_CASES: list[tuple[str, Any]] = [
    ("beginning", lambda s, d: True),
    ("end", lambda s, d: False),
    ("3", lambda s, d: s.offset >= 3),
    ("1", lambda s, d: s.offset >= 1),
    ("-2", lambda s, d: s.offset >= (2 if s.partition == 0 else 1)),
    ("-10", lambda s, d: True),
    ("+1", lambda s, d: s.offset >= 1),
    ("+3", lambda s, d: s.offset >= 3),
    ("@-1h", lambda s, d: s.timestamp_ms >= d.minutes_ago(60)),
    ("@-15m", lambda s, d: s.timestamp_ms >= d.minutes_ago(15)),
    ("@-1h30m", lambda s, d: s.timestamp_ms >= d.minutes_ago(90)),
]


@pytest.mark.parametrize(("spec", "selects"), OFFSET_CASES, ids=[c[0] for c in OFFSET_CASES])
def test_peek_offset_forms(settings: Settings, orders: TopicData, spec: str, selects: Any) -> None:
    messages = run_json(settings, "peek", orders.name, "--offset", spec)
    assert coordinates_of(messages) == orders.coordinates(lambda s: selects(s, orders))
    for message in messages:
        assert_matches_sent(message, orders)


def test_peek_at_iso_and_epoch_times(settings: Settings, orders: TopicData) -> None:
    moment = orders.now - timedelta(minutes=25)
    expected = orders.coordinates(lambda s: s.timestamp_ms >= ms(moment))
    assert expected == [(0, 3), (1, 1), (1, 2)]
    for spec in (
        "@" + moment.isoformat().replace("+00:00", "Z"),
        "@" + moment.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "@" + (moment + timedelta(hours=2)).isoformat().replace("+00:00", "+02:00"),
        f"@{ms(moment)}",
    ):
        messages = run_json(settings, "peek", orders.name, "--offset", spec)
        assert coordinates_of(messages) == expected, spec


def test_peek_time_after_the_last_event_shows_nothing(
    settings: Settings, orders: TopicData
) -> None:
    assert run_json(settings, "peek", orders.name, "--offset", "@-1m") == []


def test_peek_partition_count_key_and_type(settings: Settings, orders: TopicData) -> None:
    only_p1 = run_json(settings, "peek", orders.name, "--partition", "1")
    assert coordinates_of(only_p1) == [(1, 0), (1, 1), (1, 2)]
    # Within one partition the order is the offset order.
    assert [m["offset"] for m in only_p1] == [0, 1, 2]

    first_two = run_json(settings, "peek", orders.name, "-p", "0", "--count", "2")
    assert coordinates_of(first_two) == [(0, 0), (0, 1)]

    by_key = run_json(settings, "peek", orders.name, "--key", "o-3")
    assert coordinates_of(by_key) == [(0, 2), (0, 3)]

    paid = run_json(settings, "peek", orders.name, "--type", "OrderPaid")
    assert coordinates_of(paid) == [(0, 1), (0, 3), (1, 1)]
    assert {m["event"]["type"] for m in paid} == {"OrderPaid"}
    assert paid[0]["event"]["amount"] == "24.68"

    both = run_json(
        settings,
        "peek",
        orders.name,
        "-p",
        "0",
        "-p",
        "1",
        "--type",
        "OrderCreated",
        "--key",
        "o-2",
        "--count",
        "5",
    )
    assert coordinates_of(both) == [(1, 0)]


def test_peek_jsonl_streams_one_object_per_line(settings: Settings, orders: TopicData) -> None:
    out = run(settings, "peek", orders.name, "--offset", "-1", "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert coordinates_of(lines) == [(0, 3), (1, 2)]
    for line in lines:
        assert_matches_sent(line, orders)


def test_peek_table_format_shows_each_event(settings: Settings, orders: TopicData) -> None:
    out = run(settings, "peek", orders.name, "-p", "1")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["PART", "OFFSET", "TIMESTAMP", "KEY"]
    assert len(lines) == 4
    assert "OrderShipped" in lines[3] and "o-2" in lines[3]


def test_tail_without_follow_reads_nothing_from_the_end(
    settings: Settings, orders: TopicData
) -> None:
    assert run_json(settings, "tail", orders.name, "--no-follow") == []
    last = run_json(settings, "tail", orders.name, "--no-follow", "--offset", "-1")
    assert coordinates_of(last) == [(0, 3), (1, 2)]


def test_undecodable_message_is_shown_raw_and_reading_goes_on(
    settings: Settings, orders: TopicData
) -> None:
    sender = Sender(settings, orders)
    good = sender.event(2, order_created("o-9"), NOW)
    paid_value = Sender(settings, orders).serializer.encode(order_paid("o-9")).value
    truncated = sender.raw(2, "o-9", paid_value[:-6], NOW, {"event_type": "OrderPaid"})
    garbage = sender.raw(2, "o-9", b"not avro at all" * 10, NOW, {})
    after = sender.event(2, order_paid("o-9"), NOW)

    messages = run_json(settings, "peek", orders.name, "-p", "2")
    assert [m["offset"] for m in messages] == [
        good.offset,
        truncated.offset,
        garbage.offset,
        after.offset,
    ]
    assert_matches_sent(messages[0], orders)
    assert_matches_sent(messages[3], orders)

    bad = messages[1]
    assert bad["event"] is None
    assert bad["error"]["reason"] == "truncated-body"
    assert bad["raw"] == truncated.value.hex()
    assert bad["size"] == len(truncated.value)
    assert bad["event_type"] == "OrderPaid"
    assert bad["schema_id"] == int.from_bytes(paid_value[1:5], "big")

    worse = messages[2]
    assert worse["error"]["reason"] == "no-magic-byte"
    assert worse["raw"] == garbage.value[:64].hex() + "…"
    assert worse["size"] == 150
    assert worse["schema_id"] is None


def test_peek_rejects_malformed_offsets_and_types(settings: Settings, orders: TopicData) -> None:
    error = fails(settings, "peek", orders.name, "--offset", "yesterday")
    assert isinstance(error, UsageError)
    assert "'yesterday'" in error.message and "@-1h" in error.message and "-N" in error.message
    error = fails(settings, "peek", orders.name, "--type", "OrderLost")
    assert isinstance(error, UsageError) and "OrderPaid" in error.message
    error = fails(settings, "peek", orders.name, "--partition", "7")
    assert isinstance(error, UsageError) and "partition 7" in error.message


# -- groups and lag -------------------------------------------------------------------------


def committing_consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def consume_and_commit(
    settings: Settings, group: str, topic: str, upto: dict[int, int]
) -> dict[tuple[str, int], int]:
    """Read each partition up to ``upto[p]`` (exclusive) and commit that position."""
    consumer = committing_consumer(settings, group)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in upto])
        seen = {p: 0 for p in upto}
        deadline = time.monotonic() + 15
        while any(seen[p] < upto[p] for p in upto) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            pid = message.partition()
            assert pid is not None
            if seen[pid] < upto[pid]:
                seen[pid] = (message.offset() or 0) + 1
        assert seen == upto
        commits = [TopicPartition(topic, p, offset) for p, offset in upto.items()]
        consumer.commit(offsets=commits, asynchronous=False)
    finally:
        consumer.close()
    return {(topic, p): offset for p, offset in upto.items()}


def kafka_committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = futures[group].result(timeout=10)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def test_lag_against_offsets_a_consumer_committed(
    settings: Settings, admin: AdminClient, orders: TopicData, unique_name: str
) -> None:
    group = f"{unique_name}-g"
    committed = consume_and_commit(settings, group, orders.name, {0: 1, 1: 3})
    assert kafka_committed(admin, group) == committed

    lag = run_json(settings, "lag", group)
    assert lag["group"] == group
    assert lag["state"] == "EMPTY"
    rows = {(p["topic"], p["partition"]): p for p in lag["partitions"]}
    assert set(rows) == set(committed)
    for key, offset in committed.items():
        end = orders.end(key[1])
        assert rows[key] == {
            "topic": key[0],
            "partition": key[1],
            "committed": offset,
            "end": end,
            "lag": end - offset,
        }
    assert lag["total_lag"] == 3
    assert "db_agrees" not in lag  # no database with consumer_offsets in these settings

    table = run(settings, "lag", group)
    assert "committed" in table and "db offset" not in table


def test_lag_shows_database_offsets_and_whether_they_agree(
    settings: Settings, orders: TopicData, unique_name: str, tmp_path: Path
) -> None:
    group = f"{unique_name}-g"
    consume_and_commit(settings, group, orders.name, {0: 2, 1: 3})
    db_url = f"sqlite:///{tmp_path / 'offsets.db'}"
    engine = create_engine(db_url)
    CONSUMER_OFFSETS.create(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(CONSUMER_OFFSETS),
            [
                {"group_id": group, "topic": orders.name, "partition": 0, "next_offset": 2},
                {"group_id": group, "topic": orders.name, "partition": 1, "next_offset": 1},
                {"group_id": group, "topic": orders.name, "partition": 2, "next_offset": 0},
                {"group_id": "other", "topic": orders.name, "partition": 0, "next_offset": 4},
            ],
        )
    engine.dispose()
    with_db = settings.with_overrides(database_url=db_url)

    lag = run_json(with_db, "lag", group)
    rows = {p["partition"]: p for p in lag["partitions"]}
    assert rows[0]["committed"] == 2 and rows[0]["db_offset"] == 2 and rows[0]["agrees"]
    assert rows[1]["committed"] == 3 and rows[1]["db_offset"] == 1 and not rows[1]["agrees"]
    # Never committed to Kafka, offset 0 in the database: both read from the start.
    assert rows[2]["committed"] is None and rows[2]["db_offset"] == 0 and rows[2]["agrees"]
    assert rows[2]["lag"] is None
    assert lag["db_agrees"] is False
    assert "db offset" in run(with_db, "lag", group)


def test_lag_of_a_project_group_under_a_topic_prefix(
    settings: Settings, orders: TopicData, unique_name: str, tmp_path: Path
) -> None:
    """Under SHOPSTREAM_TOPIC_PREFIX: Kafka group <prefix>order-state, DB rows order-state."""
    prefix = f"{unique_name}-"
    consume_and_commit(settings, f"{prefix}order-state", orders.name, {0: 4})
    db_url = f"sqlite:///{tmp_path / 'offsets.db'}"
    engine = create_engine(db_url)
    CONSUMER_OFFSETS.create(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(CONSUMER_OFFSETS),
            [
                {"group_id": "order-state", "topic": orders.name, "partition": 0, "next_offset": 4},
            ],
        )
    engine.dispose()
    tenant = settings.with_overrides(database_url=db_url, shopstream_topic_prefix=prefix)
    lag = run_json(tenant, "lag", "order-state")
    assert lag["group"] == f"{prefix}order-state"
    assert lag["partitions"] == [
        {
            "topic": orders.name,
            "partition": 0,
            "committed": 4,
            "end": 4,
            "lag": 0,
            "db_offset": 4,
            "agrees": True,
        }
    ]
    assert lag["db_agrees"] is True


def test_lag_of_an_unknown_group_is_a_usage_error(settings: Settings, unique_name: str) -> None:
    error = fails(settings, "lag", f"{unique_name}-nobody")
    assert isinstance(error, UsageError)
    assert "unknown consumer group" in error.message and "inspect groups" in error.message


def test_groups_shows_state_and_members(
    settings: Settings, orders: TopicData, unique_name: str
) -> None:
    group = f"{unique_name}-live"
    consumer = committing_consumer(settings, group)
    try:
        consumer.subscribe([orders.name])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment()
        groups = {g["group"]: g for g in run_json(settings, "groups")}
        live = groups[group]
        assert live["state"] == "STABLE"
        assert len(live["members"]) == 1
        assigned = {(a["topic"], a["partition"]) for a in live["members"][0]["assignment"]}
        assert assigned == {(orders.name, p) for p in range(3)}
        assert group in run(settings, "groups")
    finally:
        consumer.close()


# -- schemas --------------------------------------------------------------------------------


@pytest.fixture
def two_version_subject(settings: Settings, unique_name: str) -> Iterator[tuple[str, int, int]]:
    """A subject (TopicRecordNameStrategy name) with OrderPaid and a compatible v2."""
    registry = make_registry_client(settings.registry_config())
    spec = load_catalog().get("OrderPaid")
    subject = f"{unique_name}-{spec.full_name}"
    v2 = json.loads(spec.schema_str)
    v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    registry.set_compatibility(subject_name=subject, level="BACKWARD_TRANSITIVE")
    id1 = registry.register_schema(subject, Schema(spec.schema_str, "AVRO"))
    id2 = registry.register_schema(subject, Schema(json.dumps(v2), "AVRO"))
    yield subject, id1, id2
    with contextlib.suppress(Exception):  # best-effort cleanup
        registry.delete_subject(subject)
        registry.delete_subject(subject, permanent=True)


def test_schemas_lists_subjects_versions_ids_and_compatibility(
    settings: Settings, two_version_subject: tuple[str, int, int]
) -> None:
    subject, id1, id2 = two_version_subject
    listed = {s["subject"]: s for s in run_json(settings, "schemas")}
    assert listed[subject] == {
        "subject": subject,
        "compatibility": "BACKWARD_TRANSITIVE",
        "versions": [{"version": 1, "id": id1}, {"version": 2, "id": id2}],
    }
    assert subject in run(settings, "schemas")


def test_schemas_subject_prints_a_version(
    settings: Settings, two_version_subject: tuple[str, int, int]
) -> None:
    subject, id1, id2 = two_version_subject
    latest = run_json(settings, "schemas", subject)
    assert (latest["version"], latest["id"]) == (2, id2)
    assert latest["schema"]["fields"][-1]["name"] == "note"
    first = run_json(settings, "schemas", subject, "--version", "1")
    assert (first["version"], first["id"]) == (1, id1)
    assert first["schema"]["name"] == "OrderPaid"
    assert "note" not in {f["name"] for f in first["schema"]["fields"]}
    text = run(settings, "schemas", subject, "-v", "1")
    assert f"{subject} version 1 (id {id1}" in text and '"OrderPaid"' in text

    error = fails(settings, "schemas", subject, "--version", "9")
    assert isinstance(error, UsageError) and "versions: 1, 2" in error.message
    error = fails(settings, "schemas", f"{subject}-missing")
    assert isinstance(error, UsageError) and "unknown subject" in error.message


# -- dead letters ---------------------------------------------------------------------------


def dlq_headers(reason: str, error: str, partition: int, offset: int) -> dict[str, str]:
    return {
        "dlq.reason": reason,
        "dlq.error": error,
        "dlq.group": "order-state",
        "dlq.topic": "order-events",
        "dlq.partition": str(partition),
        "dlq.offset": str(offset),
        "dlq.timestamp": "2026-11-29T15:00:00.000+00:00",
    }


@pytest.fixture
def dead_letters(settings: Settings, admin: AdminClient, unique_name: str) -> Iterator[TopicData]:
    data = TopicData(f"{unique_name}.dlq", 1)
    create_topic(admin, data.name, 1)
    sender = Sender(settings, data)
    illegal = "illegal-transition"
    sender.event(0, order_paid("o-1"), NOW, dlq_headers(illegal, "paid after cancel", 3, 10))
    sender.event(0, order_created("o-7"), NOW, dlq_headers("unknown-order", "no o-7", 1, 4))
    sender.event(0, order_paid("o-2"), NOW, dlq_headers(illegal, "paid twice", 5, 11))
    value = sender.serializer.encode(order_paid("o-5")).value[:-4]
    headers = {"event_type": "OrderPaid", **dlq_headers("truncated-body", "ended early", 0, 2)}
    sender.raw(0, "o-5", value, NOW, headers)
    yield data
    delete_topics(admin, data.name)


def test_dlq_groups_dead_letters_by_reason(settings: Settings, dead_letters: TopicData) -> None:
    base = dead_letters.name.removesuffix(".dlq")
    for name in (base, dead_letters.name):
        report = run_json(settings, "dlq", name)
        assert report["topic"] == dead_letters.name
        assert report["total"] == 4
        assert [(r["reason"], r["count"]) for r in report["reasons"]] == [
            ("illegal-transition", 2),
            ("truncated-body", 1),
            ("unknown-order", 1),
        ]
    illegal = report["reasons"][0]["messages"]
    assert [m["offset"] for m in illegal] == [0, 2]
    first = illegal[0]
    assert first["error"] == "paid after cancel"
    assert first["group"] == "order-state"
    assert first["original"] == {"topic": "order-events", "partition": 3, "offset": 10}
    assert first["dead_lettered_at"] == "2026-11-29T15:00:00.000+00:00"
    assert first["key"] == "o-1"
    sent = dead_letters.at(0, 0)
    assert sent.event is not None
    assert first["event"] == sent.event.to_json()
    assert first["event_id"] == sent.event.event_id
    truncated = report["reasons"][1]["messages"][0]
    assert truncated["event"] is None
    assert truncated["decode_error"]["reason"] == "truncated-body"
    assert truncated["original"] == {"topic": "order-events", "partition": 0, "offset": 2}

    only = run_json(settings, "dlq", base, "--reason", "unknown-order")
    assert only["total"] == 1 and only["reasons"][0]["messages"][0]["key"] == "o-7"
    table = run(settings, "dlq", base)
    assert "illegal-transition" in table and "4 dead letters" in table


def test_dlq_of_an_unknown_topic_is_a_usage_error(settings: Settings, unique_name: str) -> None:
    error = fails(settings, "dlq", unique_name)
    assert isinstance(error, UsageError) and f"{unique_name}.dlq" in error.message


# -- read-only: no group, no committed offset -----------------------------------------------


def all_groups(admin: AdminClient) -> set[str]:
    listing = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    return {group.group_id for group in listing.valid}


def test_inspection_leaves_no_group_and_no_committed_offset(
    settings: Settings, admin: AdminClient, orders: TopicData, dead_letters: TopicData
) -> None:
    before = all_groups(admin)
    run_json(settings, "topics")
    run_json(settings, "topic", orders.name)
    run_json(settings, "peek", orders.name)
    run_json(settings, "peek", orders.name, "--offset", "@-1h", "--count", "1")
    run_json(settings, "tail", orders.name, "--no-follow", "--offset", "-2")
    run_json(settings, "dlq", dead_letters.name)
    run_json(settings, "groups")
    after = all_groups(admin)

    assert INSPECT_GROUP not in after
    assert not [g for g in after - before if "inspect" in g]
    assert kafka_committed(admin, INSPECT_GROUP) == {}
    # No group at all holds an offset for the topics inspection read.
    for group in after:
        topics = {topic for topic, _ in kafka_committed(admin, group)}
        assert orders.name not in topics and dead_letters.name not in topics, group


def test_unreachable_broker_is_a_connection_error(settings: Settings) -> None:
    nowhere = settings.with_overrides(kafka_bootstrap_servers="127.0.0.1:1")
    error = fails(nowhere, "topics", "--timeout", "1")
    assert isinstance(error, ConnectionFailed)
    assert "127.0.0.1:1" in error.message and "KAFKA_BOOTSTRAP_SERVERS" in error.message
