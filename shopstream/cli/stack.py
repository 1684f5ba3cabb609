"""`shopstream stack up|down|status|check`: the local Kafka, registry and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shopstream.cli.context import console, err_console, settings_from
from shopstream.cli.params import finite
from shopstream.config import mask_url_password
from shopstream.errors import StackError
from shopstream.stack import LocalStack, PartStatus, StackConfig
from shopstream.stack.config import DEFAULT_SECURE_PORT, MAX_BROKERS
from shopstream.stack.health import ClusterHealth, cluster_health
from shopstream.stack.probe import probe_database, probe_kafka, probe_registry

app = typer.Typer(
    help="The local stack: Kafka, Apicurio Registry and (on request) PostgreSQL.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="SHOPSTREAM_STACK_DIR",
        help="Data, logs and pid files [default: <cache dir>/stack].",
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Download cache [default: SHOPSTREAM_CACHE_DIR]."),
]


def _port(flag: str, env: str, default: int) -> object:
    return typer.Option(flag, envvar=env, min=1, max=65535, help=f"[default: {default}]")


def _stack(ctx: typer.Context, state_dir: Path | None, cache_dir: Path | None) -> LocalStack:
    config = StackConfig.from_settings(settings_from(ctx), state_dir=state_dir, cache_dir=cache_dir)
    return LocalStack(config, progress=_progress)


def _progress(message: str) -> None:
    err_console.print(f"[dim]…[/dim] {message}", highlight=False)


def _listens(status: PartStatus) -> str:
    return "\n".join(
        f"127.0.0.1:{port}" + ("" if label == status.name else f" ({label.replace('_', ' ')})")
        for label, port in status.ports.items()
    )


def _table(statuses: list[PartStatus], notes: dict[str, str] | None = None) -> Table:
    table = Table("part", "state", "pid", "listens on", "answers", "logs")
    for column in table.columns[:5]:
        column.no_wrap = True
    for status in statuses:
        state = (notes or {}).get(status.name) or ("running" if status.running else "stopped")
        table.add_row(
            status.title,
            state,
            str(status.pid or "-"),
            _listens(status),
            "yes" if status.answers else "no",
            "\n".join(str(path) for path in status.logs),
        )
    return table


@app.command("up")
def up(
    ctx: typer.Context,
    postgres: Annotated[
        bool, typer.Option("--postgres", help="Also start a local PostgreSQL cluster.")
    ] = False,
    kafka_port: Annotated[int | None, _port("--kafka-port", "SHOPSTREAM_KAFKA_PORT", 9092)] = None,
    controller_port: Annotated[
        int | None, _port("--controller-port", "SHOPSTREAM_CONTROLLER_PORT", 9093)
    ] = None,
    registry_port: Annotated[
        int | None, _port("--registry-port", "SHOPSTREAM_REGISTRY_PORT", 8081)
    ] = None,
    registry_management_port: Annotated[
        int | None,
        _port("--registry-management-port", "SHOPSTREAM_REGISTRY_MANAGEMENT_PORT", 9081),
    ] = None,
    postgres_port: Annotated[
        int | None, _port("--postgres-port", "SHOPSTREAM_POSTGRES_PORT", 55432)
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            min=1,
            max=MAX_BROKERS,
            help="Kafka nodes (each broker and controller); 3 = a replicated cluster, "
            "node n on node 1's ports + 100*(n-1) [default: 1].",
        ),
    ] = None,
    secure: Annotated[
        bool | None,
        typer.Option(
            "--secure/--no-secure",
            help="Add a SASL_SSL listener (SCRAM-SHA-512, TLS with a generated CA).",
        ),
    ] = None,
    secure_port: Annotated[
        int | None, _port("--secure-port", "SHOPSTREAM_SECURE_PORT", DEFAULT_SECURE_PORT)
    ] = None,
    state_dir: StateDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Start Kafka and the schema registry (and PostgreSQL), wait until they answer."""
    config = StackConfig.from_settings(
        settings_from(ctx),
        state_dir=state_dir,
        cache_dir=cache_dir,
        kafka_port=kafka_port,
        controller_port=controller_port,
        registry_port=registry_port,
        registry_management_port=registry_management_port,
        postgres_port=postgres_port,
        with_postgres=postgres,
        brokers=brokers,
        secure=secure,
        secure_port=secure_port,
    )
    stack = LocalStack(config, progress=_progress)
    reports = stack.up()
    notes = {
        report.status.name: (
            f"started in {report.seconds:.1f} s" if report.started else "already running"
        )
        for report in reports
    }
    console.print(_table([report.status for report in reports], notes))
    console.print(f"state dir: {config.state_dir}", highlight=False)
    endpoints = stack.endpoints
    console.print("use it with:", highlight=False)
    for key, value in endpoints.env().items():
        console.print(f"  export {key}={value}", highlight=False, soft_wrap=True)
    if endpoints.secrets_file is not None:
        console.print(
            f"  the SASL password (and every setting above) is in {endpoints.secrets_file} "
            f"(mode 0600): set -a; . {endpoints.secrets_file}; set +a",
            highlight=False,
            soft_wrap=True,
        )
    if config.brokers > 1:
        console.print(_health_line(_health(stack)), highlight=False)


def _health(stack: LocalStack) -> ClusterHealth:
    return cluster_health(stack.brokers, stack.bootstrap_servers)


def _health_line(health: ClusterHealth) -> str:
    controller = (
        f"node {health.active_controller}" if health.active_controller is not None else "none"
    )
    if health.under_replicated is None:
        replication = "unknown (no broker answers)"
    elif health.under_replicated:
        shown = ", ".join(health.under_replicated[:10])
        more = len(health.under_replicated) - 10
        replication = f"{len(health.under_replicated)} ({shown}{f', +{more}' if more > 0 else ''})"
    else:
        replication = "0"
    return (
        f"active controller: {controller}; brokers in metadata: "
        f"{health.brokers_in_metadata}; under-replicated partitions: {replication}"
    )


@app.command("down")
def down(
    ctx: typer.Context,
    state_dir: StateDir = None,
    cache_dir: CacheDir = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the state dir (all data and logs).")
    ] = False,
) -> None:
    """Stop the processes this stack started (only those, by their pid files)."""
    stack = _stack(ctx, state_dir, cache_dir)
    stopped = stack.down()
    for status in stopped:
        console.print(f"stopped {status.title} (pid {status.pid})", highlight=False)
    if not stopped:
        console.print(f"nothing was running in {stack.config.state_dir}", highlight=False)
    leftovers = stack.leftover_pids()
    if leftovers:
        raise StackError(f"stack processes still running after stop: {leftovers}")
    if purge:
        stack.purge()
        console.print(f"deleted {stack.config.state_dir}", highlight=False)


@app.command("status")
def status(
    ctx: typer.Context,
    state_dir: StateDir = None,
    cache_dir: CacheDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each part: running or not, pid, ports, whether it answers, log files."""
    stack = _stack(ctx, state_dir, cache_dir)
    statuses = stack.status()
    health = _health(stack) if any(part.is_running() for part in stack.brokers) else None
    controller = health.active_controller if health else None
    if as_json:
        rows: list[dict[str, object]] = [
            {
                "part": item.name,
                "running": item.running,
                "pid": item.pid,
                "ports": item.ports,
                "answers": item.answers,
                "endpoint": mask_url_password(item.endpoint),
                "logs": [str(path) for path in item.logs],
            }
            for item in statuses
        ]
        for row, broker in zip(rows, stack.brokers, strict=False):
            row["node_id"] = broker.node.node_id
            row["active_controller"] = broker.node.node_id == controller
            row["under_replicated"] = health.under_replicated if health else None
        console.print_json(json.dumps(rows))
        return
    console.print(_table(statuses))
    if health is not None:
        console.print(_health_line(health), highlight=False)
    console.print(f"state dir: {stack.config.state_dir}", highlight=False)


@app.command("check")
def check(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, callback=finite, help="Seconds per probe.")
    ] = 5.0,
) -> None:
    """Check that the configured broker, registry and database answer (any stack)."""
    settings = settings_from(ctx)
    table = Table("part", "at", "answers")
    for probe in (probe_kafka, probe_registry, probe_database):
        result = probe(settings, timeout)
        table.add_row(result.name, result.target, result.detail)
    console.print(table)
