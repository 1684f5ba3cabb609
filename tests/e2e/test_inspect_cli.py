"""``shopstream inspect`` as a person runs it: the real entry point in a subprocess.

Checks what only a separate process shows: ``tail --follow`` prints an event produced
while it follows within a second (stdout is flushed per line), stops cleanly on
SIGINT/SIGTERM, and failures are one ``error:`` line with exit code 2, never a
traceback.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shopstream.config import Settings
from shopstream.events import OrderCreated, OrderLine, OrderPaid
from shopstream.serde import EncodedEvent, EventSerializer, make_registry_client

pytestmark = pytest.mark.e2e

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
PARTITIONS = 2


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.schema_registry_url,
        DATABASE_URL=settings.database_url,
        SHOPSTREAM_TOPIC_PREFIX="",
        PYTHONUNBUFFERED="0",
    )
    env.pop("SHOPSTREAM_DEBUG", None)
    return env


def shopstream(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, *args],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def topic(settings: Settings, unique_name: str) -> Iterator[str]:
    admin = AdminClient(dict(settings.kafka_config()))
    for future in admin.create_topics([NewTopic(unique_name, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    yield unique_name
    for future in admin.delete_topics([unique_name], operation_timeout=10).values():
        future.exception(timeout=15)


class EventSender:
    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.serializer = EventSerializer(make_registry_client(settings.registry_config()))
        self.producer = Producer({**settings.kafka_config(), "linger.ms": 0})

    def send(self, event: OrderCreated | OrderPaid, partition: int = 0) -> EncodedEvent:
        encoded = self.serializer.encode(event)
        headers: list[tuple[str, str | bytes | None]] = list(encoded.headers)
        self.producer.produce(
            self.topic,
            key=encoded.key,
            value=encoded.value,
            headers=headers,
            partition=partition,
        )
        assert self.producer.flush(10) == 0
        return encoded


def created(order_id: str) -> OrderCreated:
    line = OrderLine(sku="SKU-9", quantity=3, unit_price=Decimal("0.10"))
    return OrderCreated(
        order_id=order_id,
        customer_id="c-9",
        lines=(line,),
        total=Decimal("0.30"),
        currency="EUR",
    )


class LineReader:
    """Lines of a pipe, read on a thread so the test can wait with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            line = self.next(left)
            if line is None:
                break
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout}s")


def start_tail(settings: Settings, topic: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SHOPSTREAM, "inspect", "tail", topic, "--format", "jsonl", *args],
        env=cli_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def stop(process: subprocess.Popen[str], sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_tail_follow_shows_a_new_event_within_a_second(settings: Settings, topic: str) -> None:
    sender = EventSender(settings, topic)
    sender.send(created("old-1"))  # before the tail starts: not shown
    process = start_tail(settings, topic)
    try:
        assert process.stdout is not None and process.stderr is not None
        out, err = LineReader(process.stdout), LineReader(process.stderr)
        err.wait_for("following", timeout=20)

        for partition, order_id in ((1, "new-1"), (0, "new-2")):
            event = created(order_id)
            sent_at = time.monotonic()
            sender.send(event, partition)
            line = out.next(timeout=1.0)
            elapsed = time.monotonic() - sent_at
            assert line is not None, f"no event on stdout within 1s of producing {order_id}"
            assert elapsed < 1.0
            shown: dict[str, Any] = json.loads(line)
            assert shown["topic"] == topic
            assert shown["partition"] == partition
            assert shown["key"] == order_id
            assert shown["event"] == event.to_json()
            assert shown["event"]["total"] == "0.30"
            assert shown["subject"] == "order-events-shopstream.order.OrderCreated"
            assert isinstance(shown["version"], int)
        assert stop(process, signal.SIGINT) == 0
        assert out.next(timeout=2) is None  # nothing else was printed (old-1 was not)
    finally:
        if process.poll() is None:
            process.kill()


def test_tail_stops_cleanly_on_sigterm(settings: Settings, topic: str) -> None:
    process = start_tail(settings, topic, "--offset", "beginning", "--type", "OrderPaid")
    try:
        assert process.stderr is not None
        LineReader(process.stderr).wait_for("following", timeout=20)
        assert stop(process, signal.SIGTERM) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_peek_json_through_the_entry_point(settings: Settings, topic: str) -> None:
    sender = EventSender(settings, topic)
    first = created("o-1")
    sender.send(first)
    paid = OrderPaid(order_id="o-1", payment_id="p-1", amount=Decimal("0.30"), currency="EUR")
    sender.send(paid)
    result = shopstream(settings, "inspect", "peek", topic, "--offset", "+0", "--format", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [m["event"] for m in shown] == [first.to_json(), paid.to_json()]
    assert [m["offset"] for m in shown] == [0, 1]


def assert_one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0]


def test_unknown_topic(settings: Settings, unique_name: str) -> None:
    result = shopstream(settings, "inspect", "peek", f"{unique_name}-missing")
    assert_one_error_line(result, "unknown topic", "shopstream inspect topics")


def test_malformed_offset_shows_the_accepted_syntax(settings: Settings, topic: str) -> None:
    result = shopstream(settings, "inspect", "peek", topic, "--offset", "-1x")
    assert_one_error_line(result, "'-1x'", "beginning", "end", "-N", "+N", "@TIME", "@-30m")


def test_unknown_group(settings: Settings, unique_name: str) -> None:
    result = shopstream(settings, "inspect", "lag", f"{unique_name}-nobody")
    assert_one_error_line(result, "unknown consumer group", "shopstream inspect groups")


def test_unreachable_broker(settings: Settings) -> None:
    nowhere = settings.with_overrides(kafka_bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()
    result = shopstream(nowhere, "inspect", "topics", "--timeout", "1")
    assert_one_error_line(result, "Kafka broker unreachable at 127.0.0.1:1")
    assert time.monotonic() - started < 10
