"""The services under load: requests/s and latency of add-item, checkout and pay at a
fixed concurrency, and the relay's commit → Kafka-acknowledged lag at a fixed rate.

Starts ``shopstream serve`` (uvicorn; ``--workers`` processes on PostgreSQL, relay
inside) on a free 127.0.0.1 port against a fresh database (PostgreSQL when
TEST_POSTGRES_URL names a server, else SQLite) and fresh prefixed topics (deleted
after), then drives it from this process over ``--concurrency`` keep-alive connections with a
minimal HTTP/1.1 client (:class:`Client`: httpx cost about as much CPU per request as
the server, and the load generator shares the machine's cores):

0. a warm-up of 10 add-items per connection (the pools' connections opened, the
   statements prepared), printed but not part of the figures;
1. ``POST /carts/{id}/items`` once per cart (``--carts``) at ``--concurrency``;
2. ``POST /carts/{id}/checkout`` for each cart;
3. ``POST /orders/{id}/pay`` for each order;
4. add-item requests paced at ``--rate`` events/s for ``--seconds``, then the
   commit → acknowledged lag of exactly those outbox rows (``sent_at - created_at``);
5. (PostgreSQL) events committed straight into the outbox at ``--relay-rate``/s for
   ``--seconds`` (the relay alone, at a rate the API does not reach here), their lag.

Every request carries an Idempotency-Key. Each phase also prints the CPU it cost per
request in the load generator, the ``serve`` processes and (PostgreSQL) the database
backends serving the bench's database: where the time goes. Needs
KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL.

    python bench/services.py [--carts 2000] [--concurrency 32] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import select

from shopstream.config import Settings
from shopstream.db.engine import (
    create_postgres_database,
    drop_postgres_database,
    libpq_url,
    make_engine,
)
from shopstream.db.models import OutboxRow
from shopstream.events import CartItemAdded, now_utc
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.prefix import delete_prefixed_data
from shopstream.services import outbox
from shopstream.simulation.simulator import ProductCatalog

SKU = ProductCatalog.load().products[0].sku
PRICE = ProductCatalog.load().products[0].price
CURRENCY = ProductCatalog.load().currency


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    """One keep-alive HTTP/1.1 connection: ``post`` sends a JSON request and reads the
    status line, headers and ``Content-Length`` body of the answer (all this bench
    needs; the service always answers with a length)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any] | None) -> int:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        data = json.dumps(body).encode() if body is not None else b""
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Idempotency-Key: {uuid.uuid4().hex}\r\n\r\n".encode()
            + data
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self._reader.readexactly(length)
        return status

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class CpuMeter:
    """CPU seconds used by this process, the serve processes and the database's backends."""

    def __init__(self, serve_pid: int, database_url: str | None, database: str) -> None:
        self._serve_pid = serve_pid
        self._database_url = database_url
        self._database = database

    def sample(self) -> tuple[float, float, float | None]:
        return time.process_time(), _tree_cpu(self._serve_pid), self._postgres_cpu()

    def _postgres_cpu(self) -> float | None:
        if self._database_url is None:
            return None
        with psycopg.connect(libpq_url(self._database_url), autocommit=True) as connection:
            pids = [
                row[0]
                for row in connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    (self._database,),
                )
            ]
        return sum(_cpu(pid) for pid in pids)


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a live local process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(child) for child in children.read_text().split()] if children.exists() else []
    return _cpu(pid) + sum(_tree_cpu(kid) for kid in kids)


def _cpu_text(
    before: tuple[float, float, float | None], after: tuple[float, float, float | None], count: int
) -> str:
    def per(index: int) -> str:
        start, end = before[index], after[index]
        if start is None or end is None:
            return "-"
        return f"{(end - start) / count * 1000:.2f}"

    return f"CPU ms/request: load generator {per(0)}, serve {per(1)}, postgres {per(2)}"


async def phase(
    name: str,
    count: int,
    clients: list[Client],
    meter: CpuMeter,
    request: Callable[[Client, int], Awaitable[int]],
) -> None:
    latencies: list[float] = []
    failures = 0
    next_index = iter(range(count))

    async def worker(client: Client) -> None:
        nonlocal failures
        for index in next_index:
            began = time.perf_counter()
            try:
                status = await request(client, index)
            except (OSError, asyncio.IncompleteReadError):
                failures += 1
                client.close()
                continue
            latencies.append(time.perf_counter() - began)
            failures += status >= 300

    cpu_before = meter.sample()
    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    elapsed = time.perf_counter() - started
    cpu_after = meter.sample()
    print(
        f"{name:9s} {count:6d} requests  {count / elapsed:7.0f} req/s  "
        f"p50 {quantile(latencies, 0.5) * 1000:6.1f} ms  "
        f"p99 {quantile(latencies, 0.99) * 1000:6.1f} ms  failed {failures}  "
        + _cpu_text(cpu_before, cpu_after, count)
    )


WARM_UP_PER_CONNECTION = 10
"""Add-items per connection before the measured phases (steady state, not start-up)."""


async def drive(
    port: int, meter: CpuMeter, carts: int, concurrency: int, rate: float, seconds: float
) -> list[str]:
    run = uuid.uuid4().hex[:6]
    clients = [Client("127.0.0.1", port) for _ in range(concurrency)]
    try:
        item: dict[str, Any] = {"customer_id": "bench", "sku": SKU, "quantity": 1}
        await phase(  # the pools' connections opened, statements prepared: not measured
            "warm-up",
            WARM_UP_PER_CONNECTION * concurrency,
            clients,
            meter,
            lambda c, i: c.post(f"/carts/{run}-w{i}/items", item),
        )
        await phase(
            "add-item", carts, clients, meter, lambda c, i: c.post(f"/carts/{run}-{i}/items", item)
        )
        await phase(
            "checkout",
            carts,
            clients,
            meter,
            lambda c, i: c.post(f"/carts/{run}-{i}/checkout", {"order_id": f"{run}-o{i}"}),
        )
        payment = {"payment_id": "p", "amount": str(PRICE)}
        await phase(
            "pay", carts, clients, meter, lambda c, i: c.post(f"/orders/{run}-o{i}/pay", payment)
        )
        return await paced(run, clients, item, rate, seconds)
    finally:
        for client in clients:
            client.close()


async def paced(
    run: str, clients: list[Client], item: dict[str, Any], rate: float, seconds: float
) -> list[str]:
    """Add-items started at ``rate``/s over the connections (a request waits for a free
    connection when all are busy, so the rate reached is printed)."""
    idle: asyncio.Queue[Client] = asyncio.Queue()
    for client in clients:
        idle.put_nowait(client)
    paced_carts: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def add(cart: str) -> None:
        client = await idle.get()
        try:
            await client.post(f"/carts/{cart}/items", item)
        finally:
            idle.put_nowait(client)

    started = time.perf_counter()
    for index in range(int(rate * seconds)):
        due = started + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        cart = f"{run}-r{index}"
        paced_carts.append(cart)
        task = asyncio.create_task(add(cart))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    achieved = len(paced_carts) / (time.perf_counter() - started)
    print(f"paced     {len(paced_carts):6d} add-items at {achieved:7.0f}/s (asked {rate:g}/s)")
    return paced_carts


FEED_TICK_S = 0.005
"""The direct outbox feed commits a batch every this often (many requests' commits)."""


def feed_outbox(database_url: str, rate: float, seconds: float) -> list[str]:
    """Commit CartItemAdded rows straight into the outbox at ``rate`` events/s (as the
    service does: one transaction per batch, then a NOTIFY after the commit), for the
    relay alone at a rate the API cannot reach on this machine; returns their carts."""
    engine = make_engine(database_url)
    stop = threading.Event()
    notifier = outbox.CommitNotifier(database_url, stop)
    notify_thread = threading.Thread(target=notifier.run, daemon=True)
    notify_thread.start()
    run = uuid.uuid4().hex[:6]
    carts: list[str] = []
    started = time.perf_counter()
    try:
        for tick in range(int(seconds / FEED_TICK_S)):
            wait_s = started + tick * FEED_TICK_S - time.perf_counter()
            if wait_s > 0:
                time.sleep(wait_s)
            due = int((tick + 1) * FEED_TICK_S * rate) - len(carts)
            batch = [f"{run}-f{len(carts) + n}" for n in range(due)]
            now = now_utc()
            events = [
                CartItemAdded(
                    cart_id=cart,
                    customer_id="bench",
                    sku=SKU,
                    quantity=1,
                    unit_price=PRICE,
                    currency=CURRENCY,
                    occurred_at=now,
                )
                for cart in batch
            ]
            with engine.begin() as connection:
                outbox.append(connection, events, now_utc())
            notifier.wake()
            carts.extend(batch)
    finally:
        stop.set()
        notify_thread.join(5)
        engine.dispose()
    achieved = len(carts) / (time.perf_counter() - started)
    print(f"outbox    {len(carts):6d} events committed at {achieved:7.0f}/s (asked {rate:g}/s)")
    return carts


def relay_lag(database_url: str, carts: list[str]) -> None:
    engine = make_engine(database_url)
    table = OutboxRow.__table__
    wanted = set(carts)
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as connection:
            rows = [
                row
                for row in connection.execute(
                    select(table.c.aggregate_id, table.c.created_at, table.c.sent_at)
                )
                if row.aggregate_id in wanted
            ]
        if all(row.sent_at is not None for row in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    engine.dispose()
    lags = [(r.sent_at - r.created_at) / timedelta(milliseconds=1) for r in rows if r.sent_at]
    print(
        f"relay lag (commit → Kafka ack) over {len(lags)} events: "
        f"p50 {quantile(lags, 0.5):.0f} ms  p99 {quantile(lags, 0.99):.0f} ms  "
        f"max {max(lags):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--carts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="serve processes (PostgreSQL)")
    parser.add_argument(
        "--relay-rate",
        type=float,
        default=2000.0,
        help="events/s committed straight into the outbox for the relay (PostgreSQL)",
    )
    args = parser.parse_args()
    base = Settings.load()
    prefix = f"bench-svc-{uuid.uuid4().hex[:8]}-"
    server = os.environ.get("TEST_POSTGRES_URL")
    workdir = Path(tempfile.mkdtemp(prefix="bench-services-"))
    database = f"bench_{uuid.uuid4().hex[:10]}"
    url = (
        create_postgres_database(server, database)
        if server
        else f"sqlite:///{workdir / 'services.db'}"
    )
    settings = base.with_overrides(database_url=url, shopstream_topic_prefix=prefix)
    create_topics(settings, project_topics(6, 1, prefix))
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, **settings.endpoint_env(), "LOG_LEVEL": "WARNING"}
    log = (workdir / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "shopstream", "serve", "--port", str(port)]
        + (["--workers", str(args.workers)] if server else []),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        service = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{service}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        print(
            f"services on {settings.masked()['DATABASE_URL'].split('@')[-1]}, "
            f"concurrency {args.concurrency}, {args.workers if server else 1} serve process(es), "
            f"{os.cpu_count()} cores"
        )
        meter = CpuMeter(serve.pid, server, database)
        paced = asyncio.run(
            drive(port, meter, args.carts, args.concurrency, args.rate, args.seconds)
        )
        relay_lag(url, paced)
        if server:
            relay_lag(url, feed_outbox(url, args.relay_rate, args.seconds))
    finally:
        serve.terminate()
        serve.wait(60)
        log.close()
        delete_prefixed_data(settings)
        if server:
            drop_postgres_database(server, database)


if __name__ == "__main__":
    main()
