"""Events outside the domain limits, and two topic prefixes sharing one database, through
the real broker, registry, database and ``shopstream`` processes.

Events outside the limits are produced as Avro the schema allows (the producer's own
validation is bypassed by changing a valid event after it was built): the consumer
refuses them before the database and dead-letters them with the field and the rule.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from consumers.runtime import dlq_writer as dlq
from consumers.runtime.offset_store import offsets_table, processed_table
from schemas import CART_TOPIC, dlq_topic
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.models import Cart
from shopstream.events import CartItemAdded
from shopstream.kafka.topics import create_topics, project_topics
from tests.e2e.test_produce_cli import assert_one_error_line, prefix, run_cli, topics
from tests.e2e.test_projections import Pipeline, pipeline
from tests.support.pipeline import header_texts, read_all
from tests.support.readback import read_topic

__all__ = ["pipeline", "prefix", "topics"]  # the fixtures, imported for these tests

pytestmark = [pytest.mark.e2e]


def added(cart: str, **overrides: object) -> CartItemAdded:
    event = CartItemAdded(
        cart_id=cart,
        customer_id="u-1",
        sku="SKU-1",
        quantity=2,
        unit_price=Decimal("10.00"),
        currency="EUR",
    )
    for name, value in overrides.items():  # past the validation: what a foreign producer sends
        object.__setattr__(event, name, value)
    return event


POISON = {
    "sku": ("S" * 101, "at most 100 characters"),
    "customer_id": ("u\x00", "control characters (found U+0000)"),
    "cart_id": ("c\x1b[2J", "control characters (found U+001B)"),
    "quantity": (2_000_000, "at most 1,000,000"),
}


def test_events_outside_the_limits_are_dead_lettered_and_good_ones_applied(
    pipeline: Pipeline,
) -> None:
    good = [added(f"good-{i}") for i in range(6)]
    poison = [added(f"bad-{name}", **{name: value}) for name, (value, _) in POISON.items()]
    overflow = added("bad-amount", quantity=2, unit_price=Decimal("9999999999.99"))
    pipeline.produce([*good[:3], *poison, overflow, *good[3:]])

    result = pipeline.cli("consume", "cart-projection", "--until-caught-up", "--http-port", "-1")

    assert result.returncode == 0, result.stdout + result.stderr
    with pipeline.engine.connect() as connection:
        carts = set(connection.execute(select(Cart.cart_id)).scalars())
    assert carts == {event.cart_id for event in good}
    letters = read_all(pipeline.settings, dlq_topic(pipeline.settings.topic(CART_TOPIC)))
    headers = [header_texts(message) for message in letters]
    assert sorted(message.key() or b"" for message in letters) == sorted(
        e.cart_id.encode() for e in [*poison, overflow]
    )
    assert {h[dlq.REASON] for h in headers} == {"invalid-event"}
    errors = sorted(h[dlq.ERROR] for h in headers)
    for name, (_, rule) in POISON.items():
        assert any(f"CartItemAdded.{name}: " in e and rule in e for e in errors), errors
    assert any("quantity x unit_price" in error for error in errors), errors


def with_prefix(pipeline: Pipeline, prefix: str) -> Pipeline:
    settings = pipeline.settings.model_copy(update={"shopstream_topic_prefix": prefix})
    create_topics(settings, project_topics(3, 1, prefix))
    return Pipeline(settings, pipeline.engine, pipeline.workdir)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_prefixes_in_one_database_never_mix(pipeline: Pipeline, tmp_path: Path) -> None:
    """Prefix B finds prefix A's group in the database: consume and rebuild refuse with
    one line and change nothing of A (offsets, processed ids, rows)."""
    other = with_prefix(pipeline, pipeline.settings.shopstream_topic_prefix + "b-")
    events = [added(f"cart-{i}") for i in range(5)]
    pipeline.produce(events)
    other.produce(events)  # the same event ids
    first = pipeline.cli("consume", "cart-projection", "--until-caught-up", "--http-port", "-1")
    assert first.returncode == 0, first.stderr

    def state() -> tuple[list[object], ...]:
        with pipeline.engine.connect() as connection:
            return (
                list(connection.execute(select(offsets_table).order_by(*offsets_table.c))),
                list(connection.execute(select(processed_table).order_by(*processed_table.c))),
                list(connection.execute(select(Cart.cart_id).order_by(Cart.cart_id))),
            )

    before = state()
    assert len(before[1]) == 5
    for args in (
        ("consume", "cart-projection", "--until-caught-up", "--http-port", "-1"),
        ("consume", "rebuild", "cart-projection"),
    ):
        refused = other.cli(*args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert "already holds group cart-projection for topic" in lines[0]
        assert pipeline.settings.topic(CART_TOPIC) in lines[0]
        assert "DATABASE_URL" in lines[0]
        assert state() == before

    # B with a database of its own consumes the same event ids as new ones
    own = other.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'b.db'}"})
    engine = make_engine(own.database_url)
    try:
        separate = Pipeline(own, engine, pipeline.workdir)
        assert separate.cli("db", "upgrade").returncode == 0
        done = separate.cli("consume", "cart-projection", "--until-caught-up", "--http-port", "-1")
        assert done.returncode == 0, done.stderr
        with engine.connect() as connection:
            assert len(connection.execute(select(Cart.cart_id)).all()) == 5
    finally:
        engine.dispose()


# -- the producing commands refuse them ------------------------------------------------


def test_produce_refuses_values_outside_the_limits_with_the_field_and_rule(
    settings: Settings, prefix: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    add = ("produce", "cart", "add-item", "--customer-id", "u", "--topic-prefix", prefix)
    cases = [
        ((*add, "--sku", "S" * 101, "--unit-price", "1.00"),
         "CartItemAdded.sku: must be at most 100 characters, got 101"),
        ((*add, "--sku", "s", "--unit-price", "9999999999.99", "--quantity", "2"),
         "CartItemAdded.quantity: quantity x unit_price (19999999999.98) must be at most"),
        (("produce", "order", "cancel", "--order-id", "o", "--reason", "a\x1b[2Jb",
          "--topic-prefix", prefix),
         "OrderCancelled.reason: must not contain control characters (found U+001B)"),
    ]  # fmt: skip
    for args, rule in cases:
        result = run_cli(settings, *args)
        assert result.returncode == 2
        assert "\x1b" not in result.stderr
        assert_one_error_line(result, rule)

    good = '{"type": "CartItemAdded", "cart_id": "c", "customer_id": "u", "sku": "s", '
    lines = [
        good + '"quantity": 1, "unit_price": "1.00", "currency": "EUR"}',
        good.replace('"u"', '"u\\u0000"')
        + '"quantity": 1, "unit_price": "1.00", "currency": "EUR"}',
        good + '"quantity": 3, "unit_price": "5000000000.00", "currency": "EUR"}',
        good + '"quantity": 2, "unit_price": "1.00", "currency": "EUR"}',
    ]
    path = tmp_path / "limits.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = run_cli(settings, "produce", "file", str(path), "--topic-prefix", prefix)
    assert refused.returncode == 2
    assert_one_error_line(refused, "2 invalid lines", "nothing was sent")
    assert (
        f"{path}:2: CartItemAdded.customer_id: must not contain control characters (found U+0000)"
        in refused.stderr
    )
    assert f"{path}:3: CartItemAdded.quantity: quantity x unit_price" in refused.stderr
    assert read_topic(settings, topics[0], 0) == []

    skipped = run_cli(
        settings, "produce", "file", str(path), "--skip-invalid", "--topic-prefix", prefix
    )
    assert skipped.returncode == 0, skipped.stderr
    assert f"{path}:2: skipped: CartItemAdded.customer_id" in skipped.stderr
    added = [r.event for r in read_topic(settings, topics[0], 2)]
    assert [e.quantity for e in added if isinstance(e, CartItemAdded)] == [1, 2]
