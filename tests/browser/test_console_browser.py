"""The console in a real browser: Debian's Chromium driven by Playwright, real stack.

One shop (simulated shoppers plus two known order stories, consumed by the real
groups) and one ``shopstream console`` process serve every test here. Each page is
opened, its live update awaited, and what it shows checked against Kafka, the
database and the CLI (the funnel equals ``query summary``); a dead letter is redriven
from the page and applied; an event produced while an order's page is open shows up
within 2 s. Screenshots go to ``test-artifacts/console/`` (gitignored); with
``SHOPSTREAM_UPDATE_SCREENSHOTS=1`` they also replace ``docs/screenshots/``.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``scripts/bootstrap.sh`` installs Debian's package); without it these tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from sqlalchemy import text

from schemas import CART_TOPIC, ORDER_TOPIC, dlq_topic
from shopstream.events import OrderShipped
from shopstream.kafka.clients import make_reader
from shopstream.simulation.simulator import SimulationConfig, Simulator
from tests.support.pipeline import BackgroundProducer
from tests.support.shop import (
    ConsoleProcess,
    OrderStory,
    Shop,
    make_shop,
    order_story,
    start_console,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "console"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
LIVE = "#live[data-state='live']"

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Scene:
    shop: Shop
    console: ConsoleProcess
    early: OrderStory
    """Shipped before it was confirmed: order-state dead-lettered its OrderShipped."""
    live: OrderStory
    """Confirmed, not shipped yet: its page gets a new event while open."""


@pytest.fixture(scope="module")
def scene(
    stack: Any, used_names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    prefix = f"t-console-browser-{uuid.uuid4().hex[:8]}"
    used_names.append(prefix)
    shop = make_shop(
        stack.bootstrap_servers, stack.registry_url, f"{prefix}-", tmp_path_factory.mktemp("shop")
    )
    early, live = order_story(ship_too_early=True), order_story(ship_too_early=False)
    config = SimulationConfig(customers=25, orders=80, seed=17, invalid_rate=0.05)
    shop.produce([*early.events, *live.events, *Simulator(config).events()])
    shop.consume()
    console = start_console(shop)
    yield Scene(shop, console, early, live)
    code = console.stop()
    shop.engine.dispose()
    assert code == 0, console.log()[-2000:]


@pytest.fixture(scope="module")
def browser(scene: Scene) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, scene: Scene) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, base_url=scene.console.url
    )
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], problems


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("SHOPSTREAM_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")


def topic_messages(shop: Shop, topic: str) -> int:
    reader = make_reader(shop.settings)
    try:
        metadata = reader.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for pid in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, pid), timeout=10)
            total += high - low
        return total
    finally:
        reader.close()


def wait_live(page: Any, path: str) -> None:
    page.goto(path)
    page.wait_for_selector(LIVE, timeout=20_000)


def test_pipeline_shows_the_topics_groups_and_tables(page: Any, scene: Scene) -> None:
    wait_live(page, "/")
    shop = scene.shop
    for logical in (ORDER_TOPIC, CART_TOPIC):
        messages = topic_messages(shop, shop.settings.topic(logical))
        meta = page.locator(f"[data-node='t:{logical}'] text.meta").first.text_content()
        assert meta.startswith(f"{messages:,} events"), meta
    letters = topic_messages(shop, dlq_topic(shop.settings.topic(ORDER_TOPIC)))
    dlq_meta = page.locator(f"[data-node='t:{ORDER_TOPIC}.dlq'] text.meta").text_content()
    assert dlq_meta == f"{letters:,} dead letters"
    with shop.engine.connect() as connection:
        orders = connection.scalar(text("SELECT count(*) FROM orders"))
    assert page.locator("[data-node='d:orders'] text.meta").text_content() == f"{orders:,} rows"
    assert page.locator("[data-node^='g:']").count() == 3
    # shoppers keep coming (no group runs here): the picture shows events/s and lag grow
    more = Simulator(SimulationConfig(customers=10, orders=60, seed=23)).events()
    producer = BackgroundProducer(shop.settings, list(more), rate=120.0).start()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-node=\"t:order-events\"] text.rate')]"
        ".some((el) => !el.textContent.startsWith('0/s'))",
        timeout=15_000,
    )
    screenshot(page, "pipeline")
    producer.join(60)


def test_lag_shows_each_partitions_offsets_from_the_database(page: Any, scene: Scene) -> None:
    wait_live(page, "/lag")
    page.wait_for_selector("[data-group='order-state'] tbody tr")
    with scene.shop.engine.connect() as connection:
        stored: dict[int, int] = dict(
            connection.execute(
                text(
                    "SELECT partition, next_offset FROM consumer_offsets "
                    "WHERE group_id = 'order-state'"
                )
            )
            .tuples()
            .all()
        )
    rows = page.locator("[data-group='order-state'] tbody tr")
    assert rows.count() == 6
    for index in range(6):
        cells = rows.nth(index).locator("td").all_text_contents()
        partition = int(cells[0].removeprefix("p"))
        assert cells[3].replace(",", "") == str(stored[partition])
        assert cells[5] == "agree"
    screenshot(page, "lag")


def test_shop_funnel_equals_query_summary(page: Any, scene: Scene) -> None:
    wait_live(page, "/shop")
    page.wait_for_selector("#funnel [data-status='SHIPPED']")
    done = scene.shop.cli("query", "summary", "--format", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected: dict[str, int] = {}
    for row in summary["orders_by_status"]:
        expected[row["status"]] = expected.get(row["status"], 0) + row["orders"]
    for status in ("PENDING_PAYMENT", "PAID", "CONFIRMED", "SHIPPED", "CANCELLED"):
        shown = page.locator(f"[data-status='{status}'] .count").text_content()
        assert int(shown.replace(",", "")) == expected.get(status, 0), status
    abandoned = page.locator("#carts-abandoned").text_content()
    assert int(abandoned.replace(",", "")) == summary["carts"]["abandoned"]
    screenshot(page, "shop")


def test_schemas_lists_the_subjects_and_the_catalog(page: Any, scene: Scene) -> None:
    page.goto("/schemas")
    page.wait_for_selector("#subjects tbody tr", timeout=30_000)
    prefix = scene.shop.settings.shopstream_topic_prefix
    subjects = page.locator("#subjects tbody tr").all_text_contents()
    assert len(subjects) == 8
    assert all(row.startswith(prefix) for row in subjects)
    assert page.locator("#catalog [data-event-type]").count() == 8
    assert page.locator("[data-event-type='OrderCreated']").get_by_text("registered").count() == 1
    screenshot(page, "schemas")


def test_redrive_a_dead_letter_from_the_page(page: Any, scene: Scene) -> None:
    wait_live(page, "/dead-letters")
    page.wait_for_selector("#dlq-totals tbody tr")
    page.wait_for_selector("#dlq-latest tr[data-letter]")
    screenshot(page, "dead-letters")
    page.fill("input[name='key']", scene.early.order_id)
    page.click("form.search button[type='submit']")
    page.wait_for_url(f"**/dead-letters?key={scene.early.order_id}")
    page.wait_for_selector(LIVE)
    shipped = scene.early.events[5]
    row = page.locator("tr[data-letter]", has_text=scene.early.order_id).filter(
        has_text="order-state"
    )
    row.wait_for()
    row.click()  # opens the decoded event
    assert shipped.event_id in page.locator("tr.detail pre.json").first.text_content()
    screenshot(page, "dead-letter-detail")
    row.locator("button[data-redrive]").click()
    page.wait_for_selector("#modal:not([hidden])")
    screenshot(page, "redrive-confirm", full_page=False)
    page.click("#modal-ok")
    page.locator(".toast", has_text="Redriven as").wait_for(timeout=15_000)
    scene.shop.consume(["order-state"])
    with scene.shop.engine.connect() as connection:
        status = connection.scalar(
            text("SELECT status FROM orders WHERE order_id = :o"), {"o": scene.early.order_id}
        )
    assert status == "SHIPPED"
    page.locator("tr[data-letter]", has_text=scene.early.order_id).filter(
        has_text="redriven"
    ).first.wait_for(timeout=15_000)


def test_order_timeline_shows_a_new_event_within_two_seconds(page: Any, scene: Scene) -> None:
    story = scene.live
    page.goto(f"/orders/{story.order_id}")
    page.wait_for_selector("#timeline li")
    page.wait_for_selector(LIVE)
    assert page.locator("#timeline li").count() == len(story.events)
    assert page.locator("#verdict").text_content() == "Topics and database agree."
    assert page.locator("#order-row [data-column='status']").text_content() == "CONFIRMED"
    screenshot(page, "order")
    new = OrderShipped(order_id=story.order_id, carrier="UPS", tracking_number="1Z999")
    (landed,) = scene.shop.produce([new])
    acked = time.monotonic()
    page.wait_for_selector(f"#timeline li[data-event-id='{new.event_id}']", timeout=2_000)
    shown_after = time.monotonic() - acked
    assert shown_after < 2.0
    item = page.locator(f"#timeline li[data-event-id='{new.event_id}']")
    assert f"p{landed.partition}@{landed.offset}" in item.text_content()
    assert "order-state: pending" in item.text_content()
