"""The stack for real: a broker, a registry and databases over real sockets.

The first tests use the session's stack (see ``tests/conftest.py``). The CLI tests
at the end run ``shopstream stack ...`` against a stack of their own, in their own
state dir on free ports, so neither the session's nor a developer's stack is touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from shopstream.config import Settings
from shopstream.stack import LocalStack, StackConfig
from shopstream.stack.process import find_marked_pids, free_ports

if TYPE_CHECKING:
    from tests.conftest import StackEndpoints

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))
AVRO_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "shopstream.test",
        "fields": [{"name": "id", "type": "string"}],
    }
)


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=30)


def _parsed(schema: Schema) -> object:
    """A fetched schema's JSON, parsed (the client types its text as optional)."""
    assert schema.schema_str is not None
    return json.loads(schema.schema_str)


def _consume_one(bootstrap: str, topic: str, group: str, timeout: float = 30.0) -> Message:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return message
    finally:
        consumer.close()
    raise AssertionError(f"no message on {topic} within {timeout} s")


def test_produce_and_consume_through_the_real_broker(
    stack: StackEndpoints, unique_name: str
) -> None:
    _create_topic(stack.bootstrap_servers, unique_name)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    producer.produce(unique_name, key=b"cart-1", value=b"hello", headers={"event_type": b"Probe"})
    assert producer.flush(30) == 0

    message = _consume_one(stack.bootstrap_servers, unique_name, unique_name)

    assert message.key() == b"cart-1"
    assert message.value() == b"hello"
    assert dict(message.headers() or []) == {"event_type": b"Probe"}


def test_register_and_fetch_a_schema_in_the_real_registry(
    stack: StackEndpoints, unique_name: str
) -> None:
    client = SchemaRegistryClient({"url": stack.registry_url})
    subject = f"{unique_name}-shopstream.test.Probe"

    schema_id = client.register_schema(subject, Schema(AVRO_SCHEMA, "AVRO"))

    assert _parsed(client.get_schema(schema_id)) == json.loads(AVRO_SCHEMA)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    assert subject in client.get_subjects()


@pytest.mark.slow
def test_schemas_survive_a_registry_restart(local_stack: LocalStack, unique_name: str) -> None:
    url = local_stack.endpoints.registry_url
    subject = f"{unique_name}-shopstream.test.Probe"
    schema_id = SchemaRegistryClient({"url": url}).register_schema(
        subject, Schema(AVRO_SCHEMA, "AVRO")
    )

    local_stack.registry.restart()

    fresh = SchemaRegistryClient({"url": url})
    assert fresh.get_latest_version(subject).schema_id == schema_id
    assert _parsed(fresh.get_schema(schema_id)) == json.loads(AVRO_SCHEMA)


def test_kafka_alone_can_be_stopped_and_started(local_stack: LocalStack, unique_name: str) -> None:
    bootstrap = local_stack.endpoints.bootstrap_servers
    _create_topic(bootstrap, unique_name)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(unique_name, value=b"kept")
    assert producer.flush(30) == 0

    assert local_stack.kafka.stop()
    assert not local_stack.kafka.is_running()
    assert not local_stack.kafka.answers(timeout=1)
    assert local_stack.registry.is_running()  # only the broker went away
    assert local_stack.kafka.start()

    assert _consume_one(bootstrap, unique_name, unique_name).value() == b"kept"


def test_postgres_alone_can_be_stopped_and_started(local_stack: LocalStack) -> None:
    assert local_stack.postgres.stop()
    assert not local_stack.postgres.answers(timeout=1)
    assert local_stack.kafka.is_running()
    assert local_stack.postgres.start()
    assert local_stack.postgres.answers()


def test_write_and_read_a_row(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata = MetaData()
    probe = Table(
        "probe", metadata, Column("id", Integer, primary_key=True), Column("name", String(40))
    )
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(probe).values(id=1, name="first"))
        with engine.connect() as conn:
            rows = conn.execute(select(probe.c.id, probe.c.name)).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "first")]
    assert database_url.startswith(("sqlite", "postgresql+psycopg"))


def test_settings_fixture_points_at_the_stack(settings: Settings, stack: StackEndpoints) -> None:
    assert settings.kafka_bootstrap_servers == stack.bootstrap_servers
    assert settings.schema_registry_url == stack.registry_url.rstrip("/")


# -- the CLI, on a stack of its own -------------------------------------------------


def _cli(*args: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture
def cli_stack(tmp_path: Path) -> Iterator[tuple[StackConfig, list[str], dict[str, str]]]:
    """An isolated state dir and free ports for ``shopstream stack ...``; stopped after."""
    settings = Settings.load()
    config = StackConfig.isolated(settings.shopstream_cache_dir, tmp_path / "stack")
    flags = [
        "--state-dir", str(config.state_dir),
        "--kafka-port", str(config.kafka_port),
        "--controller-port", str(config.controller_port),
        "--registry-port", str(config.registry_port),
        "--registry-management-port", str(config.registry_management_port),
        "--postgres-port", str(config.postgres_port),
    ]  # fmt: skip
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHOPSTREAM_STACK", "SHOPSTREAM_KAFKA", "SHOPSTREAM_REGISTRY"))
    }
    env["SHOPSTREAM_CACHE_DIR"] = str(settings.shopstream_cache_dir)
    env["COLUMNS"] = "250"  # Rich tables: no wrapped cells to search through
    try:
        yield config, flags, env
    finally:
        LocalStack(config).purge()


@pytest.mark.slow
@pytest.mark.e2e
def test_cli_stack_up_twice_status_and_down(
    cli_stack: tuple[StackConfig, list[str], dict[str, str]],
) -> None:
    config, flags, env = cli_stack
    state = ["--state-dir", str(config.state_dir)]

    first = _cli("stack", "up", "--postgres", *flags, env=env)
    assert first.returncode == 0, first.stderr
    assert f"127.0.0.1:{config.kafka_port}" in first.stdout
    assert "started in" in first.stdout

    began = time.monotonic()
    second = _cli("stack", "up", "--postgres", *flags, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already running") == 3
    assert time.monotonic() - began < 20

    shown = _cli("stack", "status", "--json", *state, env=env)
    assert shown.returncode == 0, shown.stderr
    rows = {row["part"]: row for row in json.loads(shown.stdout)}
    assert all(rows[part]["running"] and rows[part]["answers"] for part in rows)
    assert rows["kafka"]["ports"]["kafka"] == config.kafka_port
    assert _cli("stack", "status", *state, env=env).returncode == 0

    down = _cli("stack", "down", *state, env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped ") == 3
    local = LocalStack(config)
    assert local.leftover_pids() == []
    assert find_marked_pids(local.kafka.marker) == []
    again = json.loads(_cli("stack", "status", "--json", *state, env=env).stdout)
    assert not any(row["running"] for row in again)


def test_cli_stack_up_names_a_port_taken_by_someone_else(
    cli_stack: tuple[StackConfig, list[str], dict[str, str]],
) -> None:
    _, flags, env = cli_stack
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        flags = [*flags]
        flags[flags.index("--kafka-port") + 1] = str(taken)
        result = _cli("stack", "up", *flags, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: port ")
    assert str(taken) in lines[0] and "--kafka-port" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_stack_check_reports_an_unreachable_broker_in_one_line() -> None:
    (port,) = free_ports(1)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    result = _cli("stack", "check", "--timeout", "2", env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: Kafka at 127.0.0.1:{port} did not answer")
