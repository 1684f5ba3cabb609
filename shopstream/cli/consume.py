"""`shopstream consume GROUP...` — run consumer daemons until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from consumers.projections import GROUPS
from consumers.runtime.daemon import ConsumerDaemon, DaemonOptions
from consumers.runtime.reset_offsets import ResetTo
from consumers.runtime.runner import RuntimeOptions
from shopstream.cli.context import settings_from
from shopstream.cli.params import finite

REBUILD = "rebuild"
RESET_OFFSETS = "reset-offsets"
MAX_PORT = 65535


def consume(
    ctx: typer.Context,
    groups: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Groups to run in this process: {', '.join(GROUPS)}. "
            "'consume rebuild GROUP' empties one group's tables and replays its topic; "
            "'consume reset-offsets GROUP --to earliest|latest' moves its stored offsets.",
            metavar="GROUP...",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Max messages per batch.")] = 2000,
    batch_wait: Annotated[
        float,
        typer.Option(min=0.0, callback=finite, help="Max seconds to wait to fill a batch."),
    ] = 0.2,
    until_caught_up: Annotated[
        bool,
        typer.Option(
            help="Exit 0 once every partition of each group's topic (whichever member "
            "owns it) has been applied up to its end offset at start."
        ),
    ] = False,
    background_writes: Annotated[
        bool | None,
        typer.Option(
            "--background-writes/--no-background-writes",
            help="Write each batch on a separate thread while the next one is decoded "
            "(default: on for PostgreSQL, off for SQLite).",
            show_default=False,
        ),
    ] = None,
    http_port: Annotated[
        int, typer.Option(help="Port of /healthz, /readyz, /metrics (0: any free port, -1: off).")
    ] = 9400,
    http_host: Annotated[
        str, typer.Option(help="Address of the HTTP endpoint (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
    to: Annotated[
        ResetTo | None,
        typer.Option(help="With 'reset-offsets': the start or the end of the topic."),
    ] = None,
) -> None:
    """Run consumer groups until SIGTERM/SIGINT; or 'rebuild GROUP' to replay one."""
    if not groups:
        raise typer.BadParameter("name at least one group", param_hint="GROUP")
    if http_port > MAX_PORT:
        raise typer.BadParameter(f"{http_port} is not a port number", param_hint="'--http-port'")
    settings = settings_from(ctx)
    runtime = RuntimeOptions(
        batch_size=batch_size,
        batch_wait_s=batch_wait,
        until_caught_up=until_caught_up,
        background_writes=background_writes,
    )
    if to is not None and groups[0] != RESET_OFFSETS:
        raise typer.BadParameter("only with 'consume reset-offsets GROUP'", param_hint="'--to'")
    if groups[0] == RESET_OFFSETS:
        from consumers.runtime.reset_offsets import reset_offsets

        sys.exit(reset_offsets(settings, groups[1:], to))
    if groups[0] == REBUILD:
        from consumers.runtime.rebuild import rebuild_groups

        sys.exit(rebuild_groups(settings, groups[1:], runtime))
    daemon = ConsumerDaemon(
        settings,
        groups,
        runtime,
        DaemonOptions(http_port=None if http_port < 0 else http_port, http_host=http_host),
    )
    sys.exit(daemon.run())
