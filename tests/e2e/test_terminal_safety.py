"""Secrets never shown, and foreign text shown literally, through the real CLI.

Keys and values with Rich markup (``[/]``, ``[bold]``) and terminal escape sequences
(ESC, C1 controls) are produced as Avro the schema allows (past the producer's
validation), dead-lettered by a consumer, and stored in the database; ``inspect
peek|tail|dlq`` and ``query`` must show them literally, escaped, without crashing.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert

from schemas import CART_TOPIC
from shopstream.db.models import Cart
from shopstream.events import CartItemAdded
from shopstream.logs import configure_logging, get_logger
from tests.e2e.test_projections import Pipeline, pipeline, shopstream_exe

if TYPE_CHECKING:
    from tests.conftest import StackEndpoints

__all__ = ["pipeline"]  # the fixture, imported for these tests

pytestmark = [pytest.mark.e2e]

SECRET = "s3cr3t-pw"
ESC = "\x1b"
CSI = "\x9b"
#: cart ids: markup (valid by the limits), and escapes (outside them: dead-lettered)
MARKUP_ID = "[bold]cart[/] [/]"
ESCAPE_ID = f"cart{ESC}[2J{ESC}]0;owned{CSI}31m"


def added(cart: str, sku: str = "SKU-1") -> CartItemAdded:
    event = CartItemAdded(
        cart_id="placeholder",
        customer_id="[red]u[/red]",
        sku="SKU-1",
        quantity=1,
        unit_price=Decimal("1.00"),
        currency="EUR",
    )
    object.__setattr__(event, "cart_id", cart)  # what a foreign producer may send
    object.__setattr__(event, "sku", sku)
    return event


def assert_literal(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert ESC not in output
    assert CSI not in output
    for text in expected:
        assert text in output, output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_markup_and_escape_sequences_are_shown_literally(pipeline: Pipeline) -> None:
    pipeline.produce([added(MARKUP_ID), added(ESCAPE_ID, sku=f"[/]{ESC}[31m")])
    topic = pipeline.settings.topic(CART_TOPIC)
    shown_escape = "cart\\x1b[2J\\x1b]0;owned\\x9b31m"

    peeked = pipeline.cli("inspect", "peek", topic, "--offset", "beginning")
    assert_literal(peeked, MARKUP_ID, shown_escape)
    tailed = pipeline.cli("inspect", "tail", topic, "-o", "beginning", "--no-follow", "-f", "jsonl")
    assert_literal(tailed, json.dumps(MARKUP_ID), '"customer_id":"[red]u[/red]"')
    assert "cart\\u001b[2J" in tailed.stdout

    consumed = pipeline.cli("consume", "cart-projection", "--until-caught-up", "--http-port", "-1")
    assert_literal(consumed)
    letters = pipeline.cli("inspect", "dlq", topic)
    assert_literal(letters, "invalid-event", shown_escape)

    at = datetime(2026, 12, 3, tzinfo=UTC)
    with pipeline.engine.begin() as connection:  # a row written before the limits existed
        connection.execute(
            insert(Cart),
            {
                "cart_id": ESCAPE_ID,
                "customer_id": "[/]",
                "status": "ACTIVE",
                "item_count": 1,
                "subtotal": Decimal("1.00"),
                "currency": "EUR",
                "created_at": at,
                "last_activity_at": at,
            },
        )
    carts = pipeline.cli("query", "carts", "--as-of", "2026-12-03T00:00:00Z")
    assert_literal(carts, "[bold]cart[/]", "cart\\x1b[2J")
    carts = pipeline.cli("query", "carts", "--as-of", "2026-12-03T00:00:00Z", "-f", "json")
    assert_literal(carts, json.dumps(MARKUP_ID), json.dumps(ESCAPE_ID))


def test_registry_and_kafka_credentials_never_appear(tmp_path: Path, stack: StackEndpoints) -> None:
    """A failing registry call and a failing SASL broker: the error line and every log
    line name the endpoint with the password masked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_"))}
    env.update(
        SCHEMA_REGISTRY_URL=f"http://alice:{SECRET}@127.0.0.1:1/apis/ccompat/v7",
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
        SHOPSTREAM_TOPIC_PREFIX=f"secrets-{os.getpid()}-",
        LOG_LEVEL="DEBUG",
    )
    env.pop("SHOPSTREAM_DEBUG", None)

    def run(*args: str, **extra: str) -> str:
        result = subprocess.run(
            [shopstream_exe(), *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "Traceback" not in output
        assert SECRET not in output, output
        return output

    produced = run("produce", "cart", "add-item", "--customer-id", "u", "--sku", "s",
                   "--unit-price", "1.00")  # fmt: skip
    assert "alice:****@127.0.0.1:1" in produced
    sasl = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": SECRET,
    }
    assert "127.0.0.1:1" in run("inspect", "topics", "--timeout", "1", **sasl)


def test_log_lines_mask_url_passwords_and_escape_controls(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("INFO", "console")
    get_logger("test").warning(
        "registry unavailable, retrying",
        error=f"GET http://alice:{SECRET}@registry:8081/subjects failed",
        key=f"k{ESC}[2J",
    )
    logging.getLogger("client").warning("POST %s", f"https://bob:{SECRET}@h/x")
    logged = capsys.readouterr().err
    assert SECRET not in logged + caplog.text
    assert "http://alice:****@registry:8081" in logged
    assert "https://bob:****@h/x" in caplog.text
    assert ESC not in logged
    assert "k\\x1b[2J" in logged or "k\x1b[2J" in logged
