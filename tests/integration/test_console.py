"""``shopstream console`` as a real process on the real stack, over HTTP.

Binding: loopback by default, anything else refused without a token; with a token
every route but /healthz wants it. The live stream sends history then samples whose
figures match Kafka and the database; SIGTERM stops it cleanly (exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.console.server import check_bind, is_loopback
from shopstream.errors import UsageError
from tests.support.shop import Shop, make_shop, order_story, run_in_process, start_console

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(stack: Any, unique_name: str, tmp_path: Path) -> Iterator[Shop]:
    made = make_shop(stack.bootstrap_servers, stack.registry_url, f"{unique_name}-", tmp_path)
    yield made
    made.engine.dispose()


def test_only_loopback_without_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", Settings.load())
    with pytest.raises(UsageError, match="without a token"):
        check_bind("0.0.0.0", Settings.load())
    check_bind("0.0.0.0", Settings.load(shopstream_console_token="s3cret"))


def test_cli_refuses_a_public_address_without_a_token(
    shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["console", "--host", "0.0.0.0", "--port", "0"]
    code, _, err = run_in_process(shop, args, capsys, monkeypatch)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to listen on 0.0.0.0")


def read_events(client: httpx.Client, url: str, wanted: int) -> list[tuple[str, Any]]:
    """The first ``wanted`` server-sent events of ``url``."""
    events: list[tuple[str, Any]] = []
    with client.stream("GET", url, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if len(events) >= wanted:
                    break
    return events


def test_stream_health_metrics_and_a_clean_stop(shop: Shop) -> None:
    story = order_story()
    shop.produce(story.events)
    shop.consume()
    console = start_console(shop)
    try:
        with httpx.Client(base_url=console.url) as client:
            events = read_events(client, "/api/stream", 3)
            assert [name for name, _ in events] == ["history", "sample", "sample"]
            sample = events[-1][1]
            assert sample["errors"] == []
            topics = {t["name"]: t for t in sample["topics"]}
            assert topics["order-events"]["messages"] == len(story.order_events)
            assert topics["cart-events"]["messages"] == len(story.cart_events)
            assert topics["order-events.dlq"]["messages"] >= 1
            groups = {g["group"]: g for g in sample["groups"]}
            assert groups["order-state"]["lag"] == 0
            assert groups["order-state"]["db"] == len(story.order_events)
            assert sample["shop"]["orders_by_status"]["CONFIRMED"] == 1
            totals = sample["dead_letters"]["totals"]
            assert {
                "topic": "order-events.dlq",
                "group": "order-state",
                "reason": "illegal-transition",
                "count": 1,
            } in totals

            assert client.get("/healthz").json()["status"] == "ok"
            metrics = client.get("/metrics").text
            assert "shopstream_console_samples_total" in metrics
            assert 'shopstream_console_group_lag{group="order-state"} 0.0' in metrics
            for page in (
                "/",
                "/lag",
                "/shop",
                "/dead-letters",
                "/orders",
                "/schemas",
                f"/orders/{story.order_id}",
                "/static/console.js",
                "/static/logo.svg",
            ):
                assert client.get(page).status_code == 200, page

            letters = client.get("/api/dead-letters").json()["letters"]
            letter = next(x for x in letters if x["group"] == "order-state")
            assert letter["event"]["order_id"] == story.order_id
            body = {
                "topic": letter["topic"],
                "partition": letter["partition"],
                "offset": letter["offset"],
                "confirm": True,
            }
            assert client.post("/api/redrive", json=body).status_code == 403  # no header
            refused = client.post(
                "/api/redrive",
                json={**body, "confirm": False},
                headers={"x-shopstream-console": "redrive"},
            )
            assert refused.status_code == 400
            missing = client.get("/api/orders/no-such-order")
            assert missing.status_code == 404
            assert missing.json()["error"].startswith("unknown order 'no-such-order'")
            assert client.get("/api/dead-letters?limit=0").status_code == 400
    finally:
        code = console.stop()
    assert code == 0, console.log()[-2000:]
    assert "console.stopped" in console.log()


def test_a_token_guards_every_route_but_health(shop: Shop) -> None:
    console = start_console(shop, env={"SHOPSTREAM_CONSOLE_TOKEN": "t0ken-xyz"})
    try:
        with httpx.Client(base_url=console.url) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/api/snapshot").status_code == 401
            assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
            ok = client.get("/api/snapshot", headers={"authorization": "Bearer t0ken-xyz"})
            assert ok.status_code == 200
            moved = client.get("/lag?token=t0ken-xyz")
            assert moved.status_code == 303 and moved.headers["location"] == "/lag"
            assert client.get("/lag").status_code == 200  # the cookie it set
    finally:
        assert console.stop() == 0
    assert "t0ken-xyz" not in console.log()
    assert shop.settings.topic(ORDER_TOPIC)
