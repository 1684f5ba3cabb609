"""``dlq redrive`` against the real stack: choose, dry-run, send once, applied by the group.

An order's OrderShipped arrives before its OrderConfirmed, so ``order-state``
dead-letters it (illegal-transition). Once the order is confirmed, redriving that
letter must put the event back on ``order-events`` (new id, headers pointing at the
dead letter), a second redrive must send nothing, and the group must apply it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from sqlalchemy import text

from schemas import ORDER_TOPIC, dlq_topic
from shopstream.inspection.timeline import order_timeline, partition_for_key
from shopstream.kafka.clients import make_reader
from shopstream.redrive import (
    ALREADY,
    SENT,
    WILL_SEND,
    Selection,
    redrive,
    redrive_event_id,
)
from tests.support.pipeline import header_texts, read_all
from tests.support.shop import Shop, make_shop, order_story, run_in_process

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(stack: Any, unique_name: str, tmp_path: Path) -> Iterator[Shop]:
    made = make_shop(stack.bootstrap_servers, stack.registry_url, f"{unique_name}-", tmp_path)
    yield made
    made.engine.dispose()


def end_offsets(shop: Shop, topic: str) -> list[int]:
    reader = make_reader(shop.settings)
    try:
        return [
            reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(6)
        ]
    finally:
        reader.close()


def test_redrive_sends_once_and_the_group_applies_it(shop: Shop) -> None:
    story = order_story(ship_too_early=True)
    shop.produce(story.events)
    shop.consume()
    topic = shop.settings.topic(ORDER_TOPIC)
    shipped = story.events[5]
    assert shipped.event_type == "OrderShipped"

    selection = Selection(topic=ORDER_TOPIC, group="order-state", reason="illegal-transition")
    before = end_offsets(shop, topic)
    plan = redrive(shop.settings, selection, dry_run=True)
    assert [item.status for item in plan.items] == [WILL_SEND]
    assert plan.items[0].letter.event_id == shipped.event_id
    assert end_offsets(shop, topic) == before, "a dry run sent something"

    report = redrive(shop.settings, selection)
    (item,) = report.items
    assert item.status == SENT
    letter = item.letter.message
    assert item.event_id == redrive_event_id(item.letter)
    assert item.event_id != shipped.event_id
    assert item.partition == partition_for_key(story.order_id, 6)

    again = redrive(shop.settings, selection)
    assert [i.status for i in again.items] == [ALREADY]
    # sales-projection refused the same event: its letter is that event, already sent
    other = redrive(shop.settings, Selection(topic=ORDER_TOPIC, group="sales-projection"))
    assert [(i.status, i.event_id, i.offset) for i in other.items] == [
        (ALREADY, item.event_id, item.offset)
    ]
    everything = redrive(shop.settings, Selection(topic=ORDER_TOPIC), dry_run=True)
    assert {i.status for i in everything.items} == {ALREADY}
    after = end_offsets(shop, topic)
    assert sum(after) - sum(before) == 1, "a later redrive sent again"

    (redriven,) = [
        m
        for m in read_all(shop.settings, topic)
        if m.offset() == item.offset and m.partition() == item.partition
    ]
    headers = header_texts(redriven)
    assert headers["redrive.topic"] == dlq_topic(topic)
    assert (headers["redrive.partition"], headers["redrive.offset"]) == (
        str(letter.partition),
        str(letter.offset),
    )
    assert headers["redrive.event_id"] == shipped.event_id
    assert headers["event_type"] == "OrderShipped"

    shop.consume()
    with shop.engine.connect() as connection:
        status = connection.scalar(
            text("SELECT status FROM orders WHERE order_id = :o"), {"o": story.order_id}
        )
        outcome = connection.scalar(
            text(
                "SELECT outcome FROM processed_events WHERE group_id = 'order-state' "
                "AND event_id = :e"
            ),
            {"e": item.event_id},
        )
    assert (status, outcome) == ("SHIPPED", "applied")
    timeline = order_timeline(shop.settings, story.order_id)
    assert timeline.findings == ()
    assert timeline.last_change is not None
    assert (timeline.last_change.event_id, timeline.last_change.offset) == (
        item.event_id,
        item.offset,
    )


def test_cli_dry_run_json_and_one_line_errors(
    shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    story = order_story(ship_too_early=True)
    shop.produce(story.events)
    shop.consume(["order-state", "sales-projection"])
    done = shop.cli("dlq", "redrive", "order-events", "--all", "--dry-run", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # both groups refused the OrderShipped: one event would go, carrying both letters
    assert (data["dry_run"], data["would_send"], data["with_another_letter"]) == (True, 1, 1)
    letter = data["letters"][0]
    at = f"{letter['dlq']['partition']}:{letter['dlq']['offset']}"
    sent = shop.cli("dlq", "redrive", "order-events", "--at", at)
    assert sent.returncode == 0, sent.stderr
    assert "1 sent" in sent.stdout
    again = shop.cli("dlq", "redrive", "order-events", "--at", at, "--format", "json")
    assert json.loads(again.stdout)["already_redriven"] == 1

    for args in (
        ["order-events"],
        ["order-events", "--at", "x:y"],
        ["order-events", "--since", "-1h", "--until", "-2h"],
        ["order-events", "--since", "yesterday"],
        ["no-such-topic", "--all"],
    ):
        code, _, err = run_in_process(shop, ["dlq", "redrive", *args], capsys, monkeypatch)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
