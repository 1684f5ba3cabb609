"""`shopstream console`: the live web console (loopback by default)."""

from __future__ import annotations

from typing import Annotated

import typer

from shopstream.cli.context import settings_from
from shopstream.cli.params import finite
from shopstream.console.app import ConsoleOptions
from shopstream.console.server import DEFAULT_HOST, DEFAULT_PORT, serve


def console(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; beyond loopback only with SHOPSTREAM_CONSOLE_TOKEN set.",
        ),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")
    ] = DEFAULT_PORT,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.2, callback=finite, help="Seconds between pipeline samples."
        ),
    ] = 2.0,
    history: Annotated[
        float,
        typer.Option(
            "--history", min=10, callback=finite, help="Seconds of history the charts keep."
        ),
    ] = 600.0,
) -> None:
    """The live web console: pipeline, lag, shop, dead letters, order timelines, schemas.

    Runs until SIGTERM/SIGINT; prints the URL it answers on.
    """
    serve(settings_from(ctx), host, port, ConsoleOptions(interval=interval, history_s=history))
