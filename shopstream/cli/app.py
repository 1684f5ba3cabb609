"""Root of the ``shopstream`` CLI: global flags, sub-commands, and error handling.

Every expected failure is a :class:`~shopstream.errors.ShopstreamError` and ends as
``error: <one line>`` on stderr with its exit code. Usage errors exit 2. Nothing a
person can cause prints a traceback (set ``SHOPSTREAM_DEBUG=1`` to see one).

Sub-commands are imported when they run (:mod:`shopstream.cli.lazy`): starting
``shopstream`` imports neither the command modules nor Kafka, SQLAlchemy or Alembic.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated

import click
import typer

from shopstream.cli.lazy import Lazy, LazyGroup
from shopstream.errors import ShopstreamError


class Commands(LazyGroup):
    """The sub-commands, in the order ``shopstream --help`` lists them."""

    lazy = (
        Lazy(
            "simulate",
            "shopstream.cli.simulate:simulate",
            "Realistic shoppers: carts, checkouts, orders, payments, cancellations.",
        ),
        Lazy(
            "consume",
            "shopstream.cli.consume:consume",
            "Run consumer groups until SIGTERM/SIGINT; or 'rebuild GROUP' to replay one.",
        ),
        Lazy(
            "serve",
            "shopstream.cli.serve:serve",
            "The cart/order/product HTTP API (OpenAPI docs at /docs) and its outbox relay.",
        ),
        Lazy(
            "relay",
            "shopstream.cli.serve:relay",
            "The outbox relay alone: publish the services' outbox to Kafka until SIGTERM/SIGINT.",
        ),
        Lazy(
            "demo",
            "shopstream.cli.demo:demo",
            "The whole pipeline on the local default, end to end (stack, daemons, simulator).",
        ),
        Lazy("config", "shopstream.cli.config_cmd:app", "Show the effective configuration."),
        Lazy(
            "stack",
            "shopstream.cli.stack:app",
            "The local stack: Kafka, Apicurio Registry and (on request) PostgreSQL.",
        ),
        Lazy("topics", "shopstream.cli.topics:app", "Create and list the project's topics."),
        Lazy("schemas", "shopstream.cli.schemas:app", "Register and check the event schemas."),
        Lazy("db", "shopstream.cli.db:app", "Migrate the read-model database."),
        Lazy(
            "produce",
            "shopstream.cli.produce:app",
            "Send events: one from flags (cart, order) or many from a JSON Lines file.",
        ),
        Lazy(
            "inspect",
            "shopstream.cli.inspect:app",
            "Read-only views: topics, decoded events, consumer groups and lag, schemas, DLQs.",
        ),
        Lazy(
            "dlq",
            "shopstream.cli.dlq:app",
            "Dead letters: re-produce them to their topic.",
        ),
        Lazy(
            "console",
            "shopstream.cli.console_cmd:console",
            "The live web console: pipeline, lag, shop, dead letters, order timelines, schemas.",
        ),
        Lazy(
            "query",
            "shopstream.cli.query:app",
            "Ask the read models: orders, carts, sales, customers.",
        ),
    )


app = typer.Typer(
    name="shopstream",
    cls=Commands,
    help="Event streaming pipeline for an online shop on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str | None, typer.Option("--bootstrap-servers", help="Overrides KAFKA_BOOTSTRAP_SERVERS.")
    ] = None,
    registry_url: Annotated[
        str | None, typer.Option("--registry-url", help="Overrides SCHEMA_REGISTRY_URL.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides DATABASE_URL.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="console or json (LOG_FORMAT).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR (LOG_LEVEL).")
    ] = None,
) -> None:
    """Event streaming pipeline for an online shop on Apache Kafka."""
    # imported here, not at the top: `shopstream --help` needs neither
    from shopstream.config import Settings
    from shopstream.logs import configure_logging

    settings = Settings.load(
        kafka_bootstrap_servers=bootstrap_servers,
        schema_registry_url=registry_url,
        database_url=database_url,
        log_format=log_format,
        log_level=log_level.upper() if log_level is not None else None,
    )
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usage_message(exc: click.exceptions.UsageError) -> str:
    """Click's message on one line, without the "(env var: 'None')" Click 8.2.1 adds to
    every option that has no environment variable (Typer shows env vars)."""
    return _one_line(exc.format_message().replace(" (env var: 'None')", ""))


def _fail(text: str) -> None:
    """Write one unwrapped line to stderr (Rich would wrap it at the terminal width),
    URL passwords masked and control characters escaped visibly."""
    from shopstream.config import mask_passwords_in
    from shopstream.terminal import printable

    sys.stderr.write(printable(mask_passwords_in(text)) + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, map every failure to one line."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    debug = os.environ.get("SHOPSTREAM_DEBUG") == "1"
    try:
        app(args=argv, prog_name="shopstream", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:
        sys.exit(0)
    except click.exceptions.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"error: {_usage_message(exc)}{hint}")
        sys.exit(2)
    except click.exceptions.Abort:
        _fail("error: aborted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _fail(f"error: {_one_line(exc.format_message())}")
        sys.exit(exc.exit_code)
    except ShopstreamError as exc:
        if debug:
            raise
        _fail(f"error: {_one_line(exc.message)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("error: interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        _fail(
            f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            "(set SHOPSTREAM_DEBUG=1 for a traceback)"
        )
        sys.exit(1)
