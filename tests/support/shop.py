"""A small known shop on the real stack, for the timeline, redrive and console tests.

:class:`Shop` owns isolated topics (a unique prefix), a migrated SQLite database, a
producer that remembers where each event landed, and runs the project's groups with
``shopstream consume ... --until-caught-up`` as a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from producers.base import EventProducer, ProducerOptions, SentEvent
from shopstream.cli.app import main
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import (
    CartCheckedOut,
    CartItemAdded,
    DomainEvent,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderPaid,
    OrderShipped,
)
from shopstream.kafka.topics import create_topics, project_topics

ALL_GROUPS = ("order-state", "cart-projection", "sales-projection")
PARTITIONS = 6


@dataclass
class Shop:
    settings: Settings
    engine: Engine
    workdir: Path
    sent: dict[str, SentEvent] = field(default_factory=dict)
    """event_id → where it landed."""

    def produce(self, events: Iterable[DomainEvent]) -> list[SentEvent]:
        options = ProducerOptions(
            topic_prefix=self.settings.shopstream_topic_prefix, track_offsets=True
        )
        producer = EventProducer(self.settings, options).start()
        batch = list(events)
        try:
            for event in batch:
                producer.send(event)
            where = [producer.wait_for(event) for event in batch]
        finally:
            producer.close().raise_if_failed()
        for location in where:
            self.sent[location.event_id] = location
        return where

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(self.settings.endpoint_env())
        env["LOG_LEVEL"] = "WARNING"
        return env

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shopstream", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def consume(self, groups: Sequence[str] = ALL_GROUPS) -> None:
        """Run the groups until they caught up with the end of their topics."""
        done = self.cli(
            "consume", *groups, "--until-caught-up", "--http-port", "-1", "--batch-wait", "0.05"
        )
        assert done.returncode == 0, done.stderr[-2000:]


def make_shop(stack_bootstrap: str, registry_url: str, prefix: str, workdir: Path) -> Shop:
    database_url = f"sqlite:///{workdir / 'shop.db'}"
    settings = Settings.load(
        kafka_bootstrap_servers=stack_bootstrap,
        schema_registry_url=registry_url,
        database_url=database_url,
        shopstream_topic_prefix=prefix,
    )
    create_topics(settings, project_topics(PARTITIONS, 1, prefix))
    engine = make_engine(database_url)
    upgrade(engine)
    return Shop(settings, engine, workdir)


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class OrderStory:
    """One cart checked out into one order, paid, shipped too early, then confirmed."""

    cart_id: str
    order_id: str
    customer_id: str
    events: tuple[DomainEvent, ...]

    @property
    def cart_events(self) -> tuple[DomainEvent, ...]:
        return self.events[:3]

    @property
    def order_events(self) -> tuple[DomainEvent, ...]:
        return self.events[3:]


def order_story(*, ship_too_early: bool = True) -> OrderStory:
    cart_id, order_id, customer_id = new_id("cart"), new_id("order"), new_id("cust")
    price = Decimal("12.50")
    events: list[DomainEvent] = [
        CartItemAdded(
            cart_id=cart_id,
            customer_id=customer_id,
            sku="SKU-MUG",
            quantity=2,
            unit_price=price,
            currency="EUR",
        ),
        CartItemAdded(
            cart_id=cart_id,
            customer_id=customer_id,
            sku="SKU-TEE",
            quantity=1,
            unit_price=Decimal("20.00"),
            currency="EUR",
        ),
        CartCheckedOut(cart_id=cart_id, customer_id=customer_id, order_id=order_id),
        OrderCreated(
            order_id=order_id,
            customer_id=customer_id,
            lines=(
                OrderLine(sku="SKU-MUG", quantity=2, unit_price=price),
                OrderLine(sku="SKU-TEE", quantity=1, unit_price=Decimal("20.00")),
            ),
            total=Decimal("45.00"),
            currency="EUR",
            cart_id=cart_id,
        ),
        OrderPaid(
            order_id=order_id, payment_id=new_id("pay"), amount=Decimal("45.00"), currency="EUR"
        ),
    ]
    if ship_too_early:
        events.append(OrderShipped(order_id=order_id, carrier="DHL", tracking_number="TRK1"))
    events.append(OrderConfirmed(order_id=order_id))
    return OrderStory(cart_id, order_id, customer_id, tuple(events))


@dataclass
class ConsoleProcess:
    """``shopstream console --port 0`` as a real process; ``url`` once it listens."""

    process: subprocess.Popen[str]
    url: str
    log_path: Path

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait: the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_console(
    shop: Shop, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> ConsoleProcess:
    log_path = shop.workdir / f"console-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "shopstream", "console", "--port", "0", "--interval", "0.5", *args],
        env={**shop.env(), "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=log_path.open("w"),
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("console: ") or not line:
            break
    if not line.startswith("console: "):
        process.kill()
        raise AssertionError(f"the console did not start: {log_path.read_text()[-2000:]}")
    return ConsoleProcess(process, line.removeprefix("console: ").strip(), log_path)


def run_in_process(
    shop: Shop,
    args: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str, str]:
    """``shopstream ARGS`` in this process (no interpreter start-up): exit code, stdout, stderr."""
    for name, value in shop.settings.endpoint_env().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
