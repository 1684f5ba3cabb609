"""The services under load: requests/s and latency of add-item, checkout and pay at a
fixed concurrency, and the relay's commit → Kafka-acknowledged lag at a fixed rate.

Starts ``shopstream serve`` (uvicorn; ``--workers`` processes on PostgreSQL, relay
inside) on a free 127.0.0.1 port against a fresh database (PostgreSQL when
TEST_POSTGRES_URL names a server, else SQLite) and fresh prefixed topics (deleted
after), then drives it with async httpx clients from this process (the load
generator shares the machine's cores):

1. ``POST /carts/{id}/items`` once per cart (``--carts``) at ``--concurrency``;
2. ``POST /carts/{id}/checkout`` for each cart;
3. ``POST /orders/{id}/pay`` for each order;
4. add-item requests paced at ``--rate`` events/s for ``--seconds``, then the
   commit → acknowledged lag of exactly those outbox rows (``sent_at - created_at``).

Every request carries an Idempotency-Key. Needs KAFKA_BOOTSTRAP_SERVERS and
SCHEMA_REGISTRY_URL.

    python bench/services.py [--carts 2000] [--concurrency 32] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.db.models import OutboxRow
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.prefix import delete_prefixed_data
from shopstream.simulation.simulator import ProductCatalog

SKU = ProductCatalog.load().products[0].sku
PRICE = ProductCatalog.load().products[0].price


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(
    name: str, count: int, concurrency: int, request: Callable[[int], Awaitable[httpx.Response]]
) -> None:
    latencies: list[float] = []
    failures = 0
    next_index = iter(range(count))

    async def worker() -> None:
        nonlocal failures
        for index in next_index:
            began = time.perf_counter()
            try:
                answer = await request(index)
            except httpx.TransportError:
                failures += 1
                continue
            latencies.append(time.perf_counter() - began)
            failures += answer.status_code >= 300

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(
        f"{name:9s} {count:6d} requests  {count / elapsed:7.0f} req/s  "
        f"p50 {quantile(latencies, 0.5) * 1000:6.1f} ms  "
        f"p99 {quantile(latencies, 0.99) * 1000:6.1f} ms  failed {failures}"
    )


async def drive(url: str, carts: int, concurrency: int, rate: float, seconds: float) -> list[str]:
    run = uuid.uuid4().hex[:6]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def post(path: str, body: dict[str, Any] | None = None) -> httpx.Response:
            return await client.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})

        item: dict[str, Any] = {"customer_id": "bench", "sku": SKU, "quantity": 1}
        await phase("add-item", carts, concurrency, lambda i: post(f"/carts/{run}-{i}/items", item))
        await phase(
            "checkout",
            carts,
            concurrency,
            lambda i: post(f"/carts/{run}-{i}/checkout", {"order_id": f"{run}-o{i}"}),
        )
        payment = {"payment_id": "p", "amount": str(PRICE)}
        await phase("pay", carts, concurrency, lambda i: post(f"/orders/{run}-o{i}/pay", payment))
        paced_carts: list[str] = []
        started = time.perf_counter()
        pending: set[asyncio.Task[httpx.Response]] = set()
        for index in range(int(rate * seconds)):
            due = started + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            cart = f"{run}-r{index}"
            paced_carts.append(cart)
            task = asyncio.create_task(post(f"/carts/{cart}/items", item))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        achieved = len(paced_carts) / (time.perf_counter() - started)
        print(f"paced     {len(paced_carts):6d} add-items at {achieved:7.0f}/s (asked {rate:g}/s)")
        return paced_carts


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
        paced = asyncio.run(drive(service, args.carts, args.concurrency, args.rate, args.seconds))
        relay_lag(url, paced)
    finally:
        serve.terminate()
        serve.wait(60)
        log.close()
        delete_prefixed_data(settings)
        if server:
            drop_postgres_database(server, database)


if __name__ == "__main__":
    main()
