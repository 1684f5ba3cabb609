"""``shopstream simulate --via-api``: the simulator's shoppers as HTTP requests to a real
``shopstream serve`` on PostgreSQL; the read models are then built from API traffic
(outbox → relay → Kafka → the three consumer groups) and hold the same orders, carts
and sales as the simulated events imply."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.simulation.simulator import SimulationConfig, Simulator, invalid_kind
from tests.conftest import StackEndpoints, fresh_postgres_database
from tests.support.pipeline import create_project_topics
from tests.support.reference import dump_table, expected_for
from tests.support.services import ServiceProcess, outbox_verdict, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ORDERS, SEED, INVALID_RATE = 25, 11, 0.05


@pytest.fixture
def pg_settings(stack: StackEndpoints, unique_name: str) -> Iterator[Settings]:
    if not stack.postgres_url:
        pytest.skip("no PostgreSQL in this stack (set TEST_POSTGRES_URL)")
    with fresh_postgres_database(stack.postgres_url) as url:
        yield Settings.load(
            kafka_bootstrap_servers=stack.bootstrap_servers,
            schema_registry_url=stack.registry_url,
            database_url=url,
            shopstream_topic_prefix=f"{unique_name}-",
        )


def test_simulated_shoppers_through_the_api_build_the_read_models(
    pg_settings: Settings, tmp_path: Path
) -> None:
    create_project_topics(pg_settings, partitions=3)
    env = service_env(pg_settings)
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    engine = make_engine(pg_settings.database_url)
    try:
        command = [
            sys.executable, "-m", "shopstream", "simulate", "--via-api", service.url,
            "--orders", str(ORDERS), "--seed", str(SEED), "--customers", "20",
            "--invalid-rate", str(INVALID_RATE), "--concurrency", "8",
        ]  # fmt: skip
        run = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=180
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "sent " in run.stdout and "x 409" in run.stdout, run.stdout
        verdict = outbox_verdict(pg_settings, engine, tmp_path)
        print(f"[simulate --via-api] {run.stdout.splitlines()[0]}; {verdict.summary()}")
        verdict.assert_exact()
        simulated = list(
            Simulator(
                SimulationConfig(customers=20, orders=ORDERS, seed=SEED, invalid_rate=INVALID_RATE)
            ).events()
        )
        valid = [event for event in simulated if invalid_kind(event) is None]
        keep = ("order_id", "customer_id", "status", "total", "currency", "cart_id", "payment_id")
        wanted = expected_for("order-state", valid).tables["orders"]
        assert [{k: row[k] for k in keep} for row in dump_table(engine, "orders")] == [
            {k: row[k] for k in keep} for row in wanted
        ]
        assert service.terminate() == 0
    finally:
        service.kill9()
        engine.dispose()


def test_via_api_refuses_a_url_that_does_not_answer(tmp_path: Path) -> None:
    port = uuid.uuid4().int % 1000 + 64000
    command = [
        sys.executable,
        "-m",
        "shopstream",
        "simulate",
        "--via-api",
        f"http://127.0.0.1:{port}",
    ]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("error: the service at") and len(run.stderr.splitlines()) == 1
