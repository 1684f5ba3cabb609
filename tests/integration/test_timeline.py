"""``inspect order ID`` against the real broker, registry and the groups' database.

One known order story is produced and consumed by the real groups (one event is
dead-lettered); the timeline must show every event where the producer says it landed,
each group's outcome, the dead letter, the event that last changed the row, and flag
a database tampered with behind the groups' back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.events import OrderCancelled
from shopstream.inspection.timeline import (
    UnknownOrder,
    order_timeline,
    partition_for_key,
)
from shopstream.kafka.clients import make_producer
from tests.support.shop import Shop, make_shop, new_id, order_story, run_in_process

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(stack: Any, unique_name: str, tmp_path: Path) -> Iterator[Shop]:
    made = make_shop(stack.bootstrap_servers, stack.registry_url, f"{unique_name}-", tmp_path)
    yield made
    made.engine.dispose()


def test_the_key_hash_is_the_partition_the_broker_recorded(shop: Shop) -> None:
    """The project's producer settings (librdkafka's default partitioner) put a key in
    partition crc32(key) % n."""
    topic = shop.settings.topic(ORDER_TOPIC)
    producer = make_producer(shop.settings)
    landed: dict[str, int] = {}

    def on_delivery(error: Any, message: Any) -> None:
        assert error is None
        landed[message.key().decode()] = message.partition()

    keys = [new_id("order") for _ in range(500)] + ["a", "Ω-ünïcode", "x" * 300]
    for key in keys:
        producer.produce(topic, b"not avro", key.encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert landed == {key: partition_for_key(key, 6) for key in keys}
    assert len(set(landed.values())) == 6


def test_timeline_shows_every_event_outcome_and_the_row(shop: Shop) -> None:
    story = order_story()
    where = shop.produce(story.events)
    shop.consume()
    timeline = order_timeline(shop.settings, story.order_id)

    assert timeline.cart_id == story.cart_id
    events = [e for e in timeline.entries if e.kind == "event"]
    letters = [e for e in timeline.entries if e.kind == "dead-letter"]
    assert [(e.message.topic, e.message.partition, e.message.offset) for e in events] == [
        (w.topic, w.partition, w.offset) for w in where
    ]
    assert [e.event_id for e in events] == [event.event_id for event in story.events]
    # every read is one partition: the one the key hashes to
    for read in timeline.reads:
        assert read.partition == partition_for_key(read.key, 6 if "dlq" not in read.topic else 1)
    assert {r.topic for r in timeline.reads} == {
        shop.settings.topic(ORDER_TOPIC),
        shop.settings.topic(ORDER_TOPIC) + ".dlq",
        shop.settings.topic(CART_TOPIC),
        shop.settings.topic(CART_TOPIC) + ".dlq",
    }
    shipped = next(e for e in events if e.message.event_type == "OrderShipped")
    assert shipped.groups["order-state"] == "dead-lettered"
    assert all(
        outcome == "applied"
        for e in events
        if e is not shipped
        for group, outcome in e.groups.items()
        if group == "order-state" or e.message.event_type != "OrderShipped"
    )
    assert [e.message.event_type for e in events[:3]] == [
        "CartItemAdded",
        "CartItemAdded",
        "CartCheckedOut",
    ]
    assert events[0].groups == {"cart-projection": "applied"}
    (letter,) = [e for e in letters if e.dead_letter and e.dead_letter.group == "order-state"]
    assert letter.dead_letter is not None
    assert letter.dead_letter.reason == "illegal-transition"
    assert (letter.dead_letter.original_partition, letter.dead_letter.original_offset) == (
        shipped.message.partition,
        shipped.message.offset,
    )
    confirmed = where[-1]
    assert timeline.last_change is not None
    assert (timeline.last_change.event_type, timeline.last_change.offset) == (
        "OrderConfirmed",
        confirmed.offset,
    )
    assert timeline.database.order is not None
    assert timeline.database.order["status"] == "CONFIRMED"
    assert timeline.findings == ()


def test_a_new_event_is_pending_and_a_tampered_row_is_flagged(shop: Shop) -> None:
    story = order_story(ship_too_early=False)
    shop.produce(story.events)
    shop.consume()
    (cancel,) = shop.produce([OrderCancelled(order_id=story.order_id, reason="changed mind")])
    timeline = order_timeline(shop.settings, story.order_id)
    last = timeline.entries[-1]
    assert (last.message.offset, last.groups["order-state"]) == (cancel.offset, "pending")
    assert timeline.findings == ()

    with shop.engine.begin() as connection:
        connection.execute(
            text("UPDATE orders SET status = 'SHIPPED' WHERE order_id = :o"),
            {"o": story.order_id},
        )
        connection.execute(
            text("DELETE FROM processed_events WHERE event_id = :e AND group_id = 'order-state'"),
            {"e": story.events[3].event_id},
        )
    findings = order_timeline(shop.settings, story.order_id).findings
    assert any("orders.status is SHIPPED" in f for f in findings), findings
    assert any("never recorded its event id" in f for f in findings), findings


def test_cli_json_and_one_line_errors(
    shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    story = order_story(ship_too_early=False)
    shop.produce(story.events)
    done = shop.cli("inspect", "order", story.order_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["order_id"] == story.order_id
    assert [e["event_id"] for e in data["events"]] == [e.event_id for e in story.events]
    assert data["database"]["order"] is None  # not consumed yet: everything pending
    assert {e["groups"].get("order-state") for e in data["events"][3:]} == {"pending"}

    table = shop.cli("inspect", "order", story.order_id)
    assert table.returncode == 0, table.stderr
    assert "OrderPaid" in table.stdout

    code, _, err = run_in_process(shop, ["inspect", "order", "no-such-order"], capsys, monkeypatch)
    assert code == 2
    assert err.startswith("error: unknown order 'no-such-order'")
    assert len(err.strip().splitlines()) == 1
    args = ["inspect", "order", story.order_id, "--window", "0"]
    code, _, err = run_in_process(shop, args, capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    with pytest.raises(UnknownOrder):
        order_timeline(shop.settings, "also-missing")
