"""`shopstream serve` (the HTTP API and its outbox relay) and `shopstream relay`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from shopstream.cli.context import settings_from
from shopstream.cli.params import finite

MAX_PORT = 65535


def _port(value: int, flag: str, *, allow_off: bool = False) -> int:
    low = -1 if allow_off else 0
    if not low <= value <= MAX_PORT:
        raise typer.BadParameter(f"{value} is not a port number", param_hint=f"'{flag}'")
    return value


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port, logged).")] = 8000,
    relay: Annotated[
        bool,
        typer.Option(
            "--relay/--no-relay",
            help="Run the outbox relay in this process (--no-relay when 'shopstream relay' "
            "runs separately).",
        ),
    ] = True,
    relay_batch: Annotated[int, typer.Option(min=1, help="Max outbox rows per relay pass.")] = 1000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes serving the port (PostgreSQL only above 1; one relay publishes).",
        ),
    ] = 1,
    shutdown_timeout: Annotated[
        float, typer.Option(min=0.0, callback=finite, help="Seconds to finish requests on SIGTERM.")
    ] = 30.0,
) -> None:
    """The cart/order/product HTTP API (OpenAPI docs at /docs) and its outbox relay."""
    from shopstream.services.relay import RelayOptions
    from shopstream.services.server import ServeOptions
    from shopstream.services.server import serve as run_serve

    options = ServeOptions(
        host=host,
        port=_port(port, "--port"),
        relay=relay,
        relay_options=RelayOptions(batch_size=relay_batch),
        shutdown_timeout_s=shutdown_timeout,
        workers=workers,
    )
    sys.exit(run_serve(settings_from(ctx), options))


def relay(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option(min=1, help="Max outbox rows per pass.")] = 1000,
    http_port: Annotated[
        int, typer.Option(help="Port of /healthz, /readyz, /metrics (0: any free port, -1: off).")
    ] = 9401,
    http_host: Annotated[
        str, typer.Option(help="Address of the HTTP endpoint (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
) -> None:
    """The outbox relay alone: publish the services' outbox to Kafka until SIGTERM/SIGINT."""
    from shopstream.services.relay import RelayOptions
    from shopstream.services.server import run_relay

    port = _port(http_port, "--http-port", allow_off=True)
    sys.exit(
        run_relay(
            settings_from(ctx),
            RelayOptions(batch_size=batch),
            None if port < 0 else port,
            http_host,
        )
    )
