"""The outbox relay on PostgreSQL against the real broker: it cannot skip a row that
commits out of id order (where a relay reading ``id > last_id`` does), and under
concurrent commands on the same aggregates it publishes each aggregate's events in
commit order."""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from functools import partial

import pytest
from sqlalchemy import Connection, select

from schemas import CART_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import CartItemAdded, now_utc
from shopstream.services import outbox
from shopstream.services.commands import add_item, seed_products
from shopstream.services.metrics import ServiceMetrics
from shopstream.services.relay import OutboxRelay, RelayOptions
from shopstream.services.transactions import CommandExecutor, Request, make_service_engine
from shopstream.simulation.simulator import ProductCatalog
from tests.conftest import StackEndpoints, fresh_postgres_database
from tests.support.pipeline import create_project_topics
from tests.support.readback import read_topic

pytestmark = pytest.mark.integration

CATALOG = ProductCatalog.load()
SKU = CATALOG.products[0].sku


@pytest.fixture
def pg_settings(stack: StackEndpoints, unique_name: str) -> Iterator[Settings]:
    if not stack.postgres_url:
        pytest.skip("no PostgreSQL in this stack (set TEST_POSTGRES_URL)")
    with fresh_postgres_database(stack.postgres_url) as url:
        settings = Settings.load(
            kafka_bootstrap_servers=stack.bootstrap_servers,
            schema_registry_url=stack.registry_url,
            database_url=url,
            shopstream_topic_prefix=f"{unique_name}-",
        )
        create_project_topics(settings, partitions=3)
        migrated = make_engine(url)
        upgrade(migrated)
        migrated.dispose()
        yield settings


def _added(cart_id: str) -> CartItemAdded:
    product = CATALOG.products[0]
    return CartItemAdded(
        cart_id=cart_id,
        customer_id="c",
        sku=product.sku,
        quantity=1,
        unit_price=product.price,
        currency="EUR",
    )


def _naive_read(connection: Connection, after_id: int) -> list[int]:
    """What a relay with an id cursor reads: rows with an id above the last one it saw."""
    table = outbox.outbox
    query = select(table.c.id).where(table.c.id > after_id).order_by(table.c.id)
    return list(connection.execute(query).scalars())


def test_a_late_committer_is_skipped_by_an_id_cursor_but_not_by_the_relay(
    pg_settings: Settings,
) -> None:
    engine = make_service_engine(pg_settings.database_url)
    relay = OutboxRelay(pg_settings, engine, ServiceMetrics(), threading.Event(), RelayOptions())
    relay.check()
    early, late = _added("cart-early"), _added("cart-late")
    try:
        slow = engine.connect()
        slow_tx = slow.begin()
        outbox.append(slow, [early], now_utc())  # takes the lower id, commits last
        with engine.begin() as fast:
            outbox.append(fast, [late], now_utc())
        with engine.connect() as reader:
            seen = _naive_read(reader, 0)
        cursor = max(seen)
        published_first = relay.publish_once()
        slow_tx.commit()
        slow.close()
        with engine.connect() as reader:
            naive_next = _naive_read(reader, cursor)
            all_ids = _naive_read(reader, 0)
        published_then = relay.publish_once()
    finally:
        relay.close()
        engine.dispose()
    assert len(all_ids) == 2 and seen == [max(all_ids)]
    assert naive_next == [], "an id cursor moved past the late committer and never sees it"
    assert (published_first, published_then) == (1, 1)
    read = read_topic(pg_settings, pg_settings.topic(CART_TOPIC), 2)
    assert sorted(r.event.event_id for r in read) == sorted([early.event_id, late.event_id])


def test_concurrent_commands_publish_each_aggregate_in_commit_order(pg_settings: Settings) -> None:
    """Threads add items to a few shared carts while the relay runs. Each response
    says how many items the cart held after that command (its commit order); Kafka
    must hold each cart's events in exactly that order."""
    engine = make_service_engine(pg_settings.database_url)
    with engine.begin() as connection:
        seed_products(connection, CATALOG)
    stop = threading.Event()
    relay = OutboxRelay(pg_settings, engine, ServiceMetrics(), stop, RelayOptions(batch_size=7))
    relay.check()
    relay_thread = threading.Thread(target=relay.run, daemon=True)
    relay_thread.start()
    executor = CommandExecutor(engine)
    carts = [f"cart-{n}" for n in range(3)]
    commit_order: dict[str, list[tuple[int, int]]] = defaultdict(list)  # cart → (held, qty)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def shopper(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                cart, quantity = rng.choice(carts), rng.randint(1, 5)
                response = executor.execute(
                    Request(None, ""),
                    partial(add_item, cart_id=cart, customer_id="c", sku=SKU, quantity=quantity),
                )
                held = json.loads(response.body)["items"][0]["quantity"]
                with lock:
                    commit_order[cart].append((held, quantity))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shopper, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        total = sum(len(v) for v in commit_order.values())
        read = read_topic(pg_settings, pg_settings.topic(CART_TOPIC), total)
    finally:
        stop.set()
        relay_thread.join(30)
        engine.dispose()
    by_cart: dict[str, list[int]] = defaultdict(list)
    for message in read:
        assert isinstance(message.event, CartItemAdded)
        by_cart[message.key].append(message.event.quantity)
    for cart, committed in commit_order.items():
        in_commit_order = [quantity for _held, quantity in sorted(committed)]
        assert by_cart[cart] == in_commit_order, f"{cart} published out of commit order"
    assert len(read) == total
