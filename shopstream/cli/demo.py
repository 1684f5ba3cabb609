"""`shopstream demo`: the whole pipeline on the local default, end to end."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from schemas import CART_TOPIC, ORDER_TOPIC
from shopstream.cli.context import console, settings_from
from shopstream.cli.params import finite
from shopstream.cli.query import customers_table, print_summary
from shopstream.config import Settings
from shopstream.db import read_queries
from shopstream.demo.run import DemoOptions, run_demo
from shopstream.inspection.dlq_reader import read_dead_letters

#: The simulated shop runs for about a quarter of an hour of simulated time, so a cart
#: counts as abandoned after 5 idle minutes in the demo (``query carts`` defaults to 30).
DEMO_ABANDONED_AFTER = timedelta(minutes=5)


def show_read_models(settings: Settings, engine: Engine) -> None:
    """The read models and the dead letters, as a person wants to see them."""
    with engine.connect() as connection:
        summary = read_queries.summary(connection, as_of=None, abandoned_after=DEMO_ABANDONED_AFTER)
        customers = read_queries.top_customers(connection, top=5)
    print_summary(summary)
    console.print(customers_table(customers))
    counts: Counter[tuple[str, str, str]] = Counter()
    for topic in (CART_TOPIC, ORDER_TOPIC):
        report = read_dead_letters(settings, settings.topic(topic))
        for letter in report.letters:
            counts[(topic, letter.group or "-", letter.reason)] += 1
    table = Table("topic", "group", "reason", "dead letters", title="dead letters by reason")
    for (topic, group, reason), count in sorted(counts.items()):
        table.add_row(f"{topic}.dlq", group, reason, str(count))
    console.print(table)


def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=1, help="Simulated customers.")] = 2500,
    orders: Annotated[int, typer.Option(min=1, help="Checkouts to simulate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Simulation seed (same seed, same events).")] = 42,
    invalid_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, callback=finite, help="Share of events that break the rules."
        ),
    ] = 0.02,
    database_url: Annotated[
        str, typer.Option(help="Where the read models go (recreated if SQLite).")
    ] = "sqlite:///shopstream-demo.db",
    keep_stack: Annotated[
        bool, typer.Option(help="Leave the stack running even if the demo started it.")
    ] = False,
    keep_data: Annotated[
        bool, typer.Option(help="Keep the demo's topics and subjects afterwards.")
    ] = False,
) -> None:
    """The whole pipeline on the local default, end to end (stack, daemons, simulator)."""
    options = DemoOptions(
        customers=customers,
        orders=orders,
        seed=seed,
        invalid_rate=invalid_rate,
        database_url=database_url,
        keep_stack=keep_stack,
        keep_data=keep_data,
    )
    run_demo(settings_from(ctx), options, console, show_read_models)
