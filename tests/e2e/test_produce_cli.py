"""``shopstream produce`` and ``shopstream simulate`` as a person runs them.

The real entry point runs in a subprocess with the stack in its environment and
topics unique to the test (``--topic-prefix``). What it sent is read back with a plain
consumer and decoded; every bad input ends in one ``error:`` line, a non-zero exit
code and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.config import Settings
from shopstream.events import DomainEvent, OrderCreated, event_from_json
from shopstream.jsonl import dumps_event, valid_events
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.support.readback import assert_read_back_as_sent, read_topic

pytestmark = pytest.mark.e2e

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
PARTITIONS = 3
NO_REGISTRY = "http://127.0.0.1:1/apis/ccompat/v7"


def run_cli(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.schema_registry_url,
        SHOPSTREAM_TOPIC_PREFIX="",
    )
    env.pop("SHOPSTREAM_DEBUG", None)
    return subprocess.run(
        [SHOPSTREAM, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def assert_one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Non-zero exit, exactly one ``error:`` line on stderr (returned), no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}-"


def create_topics(settings: Settings, prefix: str) -> tuple[str, str]:
    names = (prefix + CART_TOPIC, prefix + ORDER_TOPIC)
    admin = AdminClient(dict(settings.kafka_config()))
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(timeout=30)
    return names


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = AdminClient(dict(settings.kafka_config()))
    for future in admin.delete_topics(names, operation_timeout=10).values():
        future.exception(timeout=15)


@pytest.fixture
def topics(settings: Settings, prefix: str) -> Iterator[tuple[str, str]]:
    names = create_topics(settings, prefix)
    yield names
    delete_topics(settings, list(names))


def split(events: list[DomainEvent]) -> tuple[list[DomainEvent], list[DomainEvent]]:
    carts = [e for e in events if e.event_type.startswith("Cart")]
    return carts, [e for e in events if not e.event_type.startswith("Cart")]


# -- one event from flags ------------------------------------------------------------


def test_one_event_commands_print_where_the_event_landed(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    order_id = "7b0b5d5e-9d5c-4d8e-9a44-6a0c1d7f3e21"
    commands = [
        [
            "cart",
            "add-item",
            "--cart-id",
            "cart-1",
            "--customer-id",
            "cust-1",
            "--sku",
            "BOOK-0004",
            "--quantity",
            "2",
            "--unit-price",
            "35.00",
        ],
        [
            "cart",
            "remove-item",
            "--cart-id",
            "cart-1",
            "--customer-id",
            "cust-1",
            "--sku",
            "BOOK-0004",
        ],
        [
            "cart",
            "checkout",
            "--cart-id",
            "cart-1",
            "--customer-id",
            "cust-1",
            "--order-id",
            order_id,
            "--correlation-id",
            "saga-1",
        ],
        [
            "order",
            "create",
            "--order-id",
            order_id,
            "--customer-id",
            "cust-1",
            "--cart-id",
            "cart-1",
            "--line",
            "BOOK-0004:1:35.00",
            "--line",
            "GROC:0001:3:1.5",
        ],
        ["order", "pay", "--order-id", order_id, "--amount", "39.50"],
        ["order", "confirm", "--order-id", order_id, "--occurred-at", "2026-03-01T10:00:00Z"],
        ["order", "ship", "--order-id", order_id, "--carrier", "DHL", "--tracking-number", "DH123"],
        [
            "order",
            "cancel",
            "--order-id",
            "other-order",
            "--reason",
            "customer-request",
            "--event-id",
            "0e2c55f0-51b1-4c8e-a51a-27d7a1fbb3f4",
        ],
    ]
    sent: list[DomainEvent] = []
    for command in commands:
        result = run_cli(settings, "produce", *command, "--topic-prefix", prefix, "--json")
        assert_ok(result)
        output = json.loads(result.stdout)
        event = event_from_json(output["event"])
        assert output["event_id"] == event.event_id and output["key"] == event.key
        assert output["topic"] == prefix + (CART_TOPIC if command[0] == "cart" else ORDER_TOPIC)
        sent.append(event)
        read = read_topic(settings, output["topic"], 0)
        located = [
            r for r in read if (r.partition, r.offset) == (output["partition"], output["offset"])
        ]
        assert [r.event for r in located] == [event]
    created = sent[3]
    assert isinstance(created, OrderCreated)
    assert created.total == sum((line.amount for line in created.lines), Decimal(0))
    assert str(created.total) == "39.50"
    assert created.lines[1].sku == "GROC:0001"
    assert sent[5].occurred_at.isoformat() == "2026-03-01T10:00:00+00:00"
    assert sent[7].event_id == "0e2c55f0-51b1-4c8e-a51a-27d7a1fbb3f4"
    carts, orders = split(sent)
    assert_read_back_as_sent(carts, read_topic(settings, topics[0], len(carts)))
    assert_read_back_as_sent(orders, read_topic(settings, topics[1], len(orders)))


def test_one_event_default_output_names_topic_partition_offset(
    settings: Settings, prefix: str, topics: tuple[str, str]
) -> None:
    result = run_cli(
        settings, "produce", "order", "confirm", "--order-id", "o-1", "--topic-prefix", prefix
    )
    assert_ok(result)
    assert f"-> {topics[1]} partition " in result.stdout
    assert " offset 0 (key o-1)" in result.stdout


# -- files -----------------------------------------------------------------------------


def test_simulated_file_is_produced_and_read_back_in_order(
    settings: Settings, prefix: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    result = run_cli(
        settings,
        "simulate",
        "--orders",
        "60",
        "--customers",
        "8",
        "--seed",
        "9",
        "--invalid-rate",
        "0.05",
        "--output",
        str(path),
    )
    assert_ok(result)
    events = list(valid_events(path.read_bytes().splitlines()))
    assert result.stdout.count("seed: 9") == 1
    produced = run_cli(settings, "produce", "file", str(path), "--topic-prefix", prefix)
    assert_ok(produced)
    assert f"delivered: {len(events):,} of {len(events):,}" in produced.stdout
    assert "events/s" in produced.stdout
    carts, orders = split(events)
    assert_read_back_as_sent(carts, read_topic(settings, topics[0], len(carts)))
    assert_read_back_as_sent(orders, read_topic(settings, topics[1], len(orders)))


def test_stdin_file_is_produced(settings: Settings, prefix: str, topics: tuple[str, str]) -> None:
    events = list(Simulator(SimulationConfig(customers=2, orders=2, seed=3)).events())
    text = "".join(dumps_event(event) + "\n" for event in events)
    result = run_cli(settings, "produce", "file", "-", "--topic-prefix", prefix, stdin=text)
    assert_ok(result)
    carts, orders = split(events)
    assert_read_back_as_sent(orders, read_topic(settings, topics[1], len(orders)))
    assert_read_back_as_sent(carts, read_topic(settings, topics[0], len(carts)))


def bad_file(tmp_path: Path) -> tuple[Path, list[DomainEvent]]:
    simulated = Simulator(SimulationConfig(customers=2, orders=1, seed=5)).events()
    events = [e for e in simulated if e.event_type.startswith("Cart")][:3]
    lines = [dumps_event(e) for e in events]
    lines.insert(1, '{"type": "OrderPaid", "order_id": "o-1"')  # line 2: broken JSON
    lines.insert(
        3,
        '{"type": "OrderPaid", "order_id": "o-1", "payment_id": "p",'
        ' "amount": "-3.00", "currency": "EUR"}',
    )  # line 4: invalid value
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, events


def test_a_file_with_invalid_lines_sends_nothing(
    settings: Settings, prefix: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path, _ = bad_file(tmp_path)
    result = run_cli(settings, "produce", "file", str(path), "--topic-prefix", prefix)
    assert result.returncode == 2
    assert_one_error_line(result, "2 invalid lines", "nothing was sent", "--skip-invalid")
    assert f"{path}:2: not valid JSON" in result.stderr
    assert f"{path}:4: OrderPaid.amount: must not be negative" in result.stderr
    assert read_topic(settings, topics[0], 0) == []
    assert read_topic(settings, topics[1], 0) == []


def test_skip_invalid_sends_the_valid_lines_and_lists_the_others(
    settings: Settings, prefix: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path, events = bad_file(tmp_path)
    result = run_cli(
        settings, "produce", "file", str(path), "--skip-invalid", "--topic-prefix", prefix
    )
    assert_ok(result)
    assert f"{path}:2: skipped: not valid JSON" in result.stderr
    assert f"{path}:4: skipped: OrderPaid.amount" in result.stderr
    assert "skipped: 2 invalid lines" in result.stdout
    assert_read_back_as_sent(events, read_topic(settings, topics[0], len(events)))
    assert read_topic(settings, topics[1], 0) == []


def test_dry_run_validates_and_sends_nothing(
    settings: Settings, prefix: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path, _ = bad_file(tmp_path)
    checked = run_cli(settings, "produce", "file", str(path), "--dry-run")
    assert checked.returncode == 2
    assert_one_error_line(checked, "2 invalid lines")
    lenient = run_cli(
        settings,
        "produce",
        "file",
        str(path),
        "--dry-run",
        "--skip-invalid",
        "--topic-prefix",
        prefix,
    )
    assert_ok(lenient)
    assert "dry run, nothing sent" in lenient.stdout
    assert read_topic(settings, topics[0], 0) == []


# -- simulate ----------------------------------------------------------------------------


def test_same_seed_gives_the_same_events_ids_included(
    settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    runs = []
    for attempt in ("a", "b"):
        prefix = f"{unique_name}-{attempt}-"
        names = create_topics(settings, prefix)
        try:
            out = tmp_path / f"{attempt}.jsonl"
            result = run_cli(
                settings,
                "simulate",
                "--orders",
                "25",
                "--customers",
                "5",
                "--seed",
                "1234",
                "--invalid-rate",
                "0.1",
                "--topic-prefix",
                prefix,
                "--output",
                str(out),
                "--produce",
            )
            assert_ok(result)
            assert "delivered:" in result.stdout
            events = list(valid_events(out.read_bytes().splitlines()))
            carts, orders = split(events)
            read = read_topic(settings, names[0], len(carts))
            read += read_topic(settings, names[1], len(orders))
            assert_read_back_as_sent(carts, read[: len(carts)])
            assert_read_back_as_sent(orders, read[len(carts) :])
            runs.append((out.read_bytes(), sorted(dumps_event(r.event) for r in read)))
        finally:
            delete_topics(settings, list(names))
    assert runs[0] == runs[1]
    expected = Simulator(SimulationConfig(customers=5, orders=25, seed=1234, invalid_rate=0.1))
    assert runs[0][0] == "".join(dumps_event(e) + "\n" for e in expected.events()).encode()


def test_simulate_to_stdout_keeps_stdout_pure_jsonl(settings: Settings) -> None:
    result = run_cli(settings, "simulate", "--orders", "3", "--seed", "2", "--output", "-")
    assert_ok(result)
    events = [event_from_json(json.loads(line)) for line in result.stdout.splitlines()]
    assert sum(1 for e in events if e.event_type == "OrderCreated") == 3
    assert "seed: 2" in result.stderr


def test_simulate_duration_and_rate(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "paced.jsonl"
    result = run_cli(
        settings,
        "simulate",
        "--duration",
        "1.5",
        "--rate",
        "40",
        "--seed",
        "3",
        "--output",
        str(out),
    )
    assert_ok(result)
    count = len(out.read_text().splitlines())
    assert 30 <= count <= 70, count


# -- bad input: one error line, non-zero exit, never a traceback -------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["produce", "order", "pay", "--order-id", "o", "--amount", "1", "--bogus"],
            "No such option: --bogus",
        ),
        (
            [
                "produce",
                "cart",
                "add-item",
                "--customer-id",
                "c",
                "--sku",
                "s",
                "--unit-price",
                "abc",
            ],
            "--unit-price: not an amount",
        ),
        (
            [
                "produce",
                "cart",
                "add-item",
                "--customer-id",
                "c",
                "--sku",
                "s",
                "--unit-price",
                "1",
                "--quantity",
                "two",
            ],
            "--quantity",
        ),
        (
            [
                "produce",
                "cart",
                "remove-item",
                "--cart-id",
                "c",
                "--customer-id",
                "c",
                "--sku",
                "s",
                "--quantity",
                "0",
            ],
            "CartItemRemoved.quantity: must be a positive integer",
        ),
        (
            [
                "produce",
                "order",
                "create",
                "--customer-id",
                "c",
                "--line",
                "A:1:1.00",
                "--total",
                "5",
            ],
            "OrderCreated.total: must equal the sum of the lines",
        ),
        (
            ["produce", "order", "create", "--customer-id", "c", "--line", "A-1-1"],
            "expected SKU:QTY:PRICE",
        ),
        (
            ["produce", "order", "pay", "--order-id", "o", "--amount", "-1"],
            "OrderPaid.amount: must not be negative",
        ),
        (
            ["produce", "order", "confirm", "--order-id", "o", "--event-id", "nope"],
            "OrderConfirmed.event_id: must be a UUID",
        ),
        (
            ["produce", "order", "confirm", "--order-id", "o", "--occurred-at", "noon"],
            "--occurred-at: not an ISO-8601 time",
        ),
        (
            ["produce", "order", "confirm", "--order-id", "o", "--topic-prefix", "bad prefix"],
            "topic prefix",
        ),
        (["produce", "file", "/nonexistent/events.jsonl"], "cannot read /nonexistent"),
        (["simulate", "--orders", "5", "--duration", "3"], "--orders or --duration"),
        (["simulate", "--invalid-rate", "2"], "--invalid-rate"),
        (["simulate", "--no-produce"], "--no-produce needs --output"),
    ],
)
def test_bad_input_is_one_error_line(settings: Settings, args: list[str], expected: str) -> None:
    result = run_cli(settings, *args)
    assert result.returncode == 2
    assert_one_error_line(result, expected)


def test_a_bad_json_line_is_one_error_line_with_the_line_listed(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "one-bad.jsonl"
    path.write_text('{"type": "OrderConfirmed", "order_id": "o-1"}\n{not json}\n')
    result = run_cli(settings, "produce", "file", str(path))
    assert result.returncode == 2
    assert_one_error_line(result, "1 invalid line in", "(first: line 2)")
    assert f"{path}:2: not valid JSON" in result.stderr


UNREACHABLE = [
    (["--bootstrap-servers", "127.0.0.1:1"], "Kafka broker unreachable at 127.0.0.1:1"),
    (["--registry-url", NO_REGISTRY], "schema registry unreachable"),
]


@pytest.mark.parametrize(("global_args", "expected"), UNREACHABLE)
@pytest.mark.parametrize(
    "command",
    [
        ["produce", "order", "confirm", "--order-id", "o-1"],
        ["produce", "file", "EVENTS"],
        ["simulate", "--orders", "2", "--seed", "1"],
    ],
    ids=["one-event", "file", "simulate"],
)
def test_unreachable_broker_or_registry_is_one_error_line(
    settings: Settings,
    tmp_path: Path,
    global_args: list[str],
    expected: str,
    command: list[str],
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "OrderConfirmed", "order_id": "o-1"}\n')
    args = [str(path) if arg == "EVENTS" else arg for arg in command]
    result = run_cli(settings, *global_args, *args)
    assert result.returncode == 2
    assert_one_error_line(result, expected)


def test_missing_topics_are_one_error_line(settings: Settings, prefix: str) -> None:
    result = run_cli(
        settings, "produce", "order", "confirm", "--order-id", "o-1", "--topic-prefix", prefix
    )
    assert result.returncode == 2
    assert_one_error_line(result, f"{prefix}cart-events", "shopstream topics create")
