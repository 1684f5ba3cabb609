"""The services' HTTP API end to end: a real ``shopstream serve`` (uvicorn subprocess on
a free 127.0.0.1 port) on PostgreSQL and on SQLite, driven with httpx.

Every route's happy and refused paths; refused commands write no outbox row;
``Idempotency-Key`` replay, reuse and in-flight; and at the end, every committed event
is in Kafka once per aggregate in commit order and the consumer groups' read models
equal the reference folded from the outbox. SIGTERM stops the service with exit 0.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, func, select

from shopstream.config import Settings
from shopstream.db.engine import (
    create_postgres_database,
    drop_postgres_database,
    libpq_url,
    make_engine,
)
from shopstream.simulation.simulator import ProductCatalog
from tests.conftest import StackEndpoints
from tests.support.pipeline import create_project_topics
from tests.support.services import ServiceProcess, outbox_table, outbox_verdict, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CATALOG = ProductCatalog.load()
SKU_A, SKU_B = CATALOG.products[0].sku, CATALOG.products[1].sku
PRICE = {p.sku: p.price for p in CATALOG.products}


@dataclass
class Shop:
    settings: Settings
    service: ServiceProcess
    client: httpx.Client
    engine: Engine
    workdir: Path

    def outbox_rows(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(outbox_table)).scalar_one()

    def post(self, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": f'"{key}"'} if key else {}
        return self.client.post(path, json=body, headers=headers)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def shop(
    request: pytest.FixtureRequest,
    stack: StackEndpoints,
    used_names: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shop]:
    workdir = tmp_path_factory.mktemp(f"services-{request.param}")
    prefix = f"t-svc-api-{uuid.uuid4().hex[:8]}-"
    used_names.append(prefix)
    database = None
    if request.param == "postgresql":
        if not stack.postgres_url:
            pytest.skip("no PostgreSQL in this stack (set TEST_POSTGRES_URL)")
        database = f"test_{uuid.uuid4().hex[:12]}"
        url = create_postgres_database(stack.postgres_url, database)
    else:
        url = f"sqlite:///{workdir / 'shop.db'}"
    settings = Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=url,
        shopstream_topic_prefix=prefix,
    )
    create_project_topics(settings, partitions=3)
    service = ServiceProcess(service_env(settings), workdir / "serve.log").start()
    engine = make_engine(url)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            yield Shop(settings, service, client, engine, workdir)
        assert service.terminate() == 0, service.log_text()[-2000:]
        assert '"event": "stopped"' in service.log_text()
    finally:
        service.kill9()
        engine.dispose()
        if database and stack.postgres_url:
            drop_postgres_database(stack.postgres_url, database)


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def fill_cart(shop: Shop, items: dict[str, int], customer: str = "alice") -> str:
    cart = new_id("cart")
    for sku, quantity in items.items():
        answer = shop.post(
            f"/carts/{cart}/items", {"customer_id": customer, "sku": sku, "quantity": quantity}
        )
        assert answer.status_code == 200, answer.text
    return cart


def checkout(shop: Shop, cart: str) -> dict[str, Any]:
    order = new_id("order")
    answer = shop.post(f"/carts/{cart}/checkout", {"order_id": order})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


# -- operations ----------------------------------------------------------------------


def test_health_metrics_and_docs(shop: Shop) -> None:
    assert shop.client.get("/healthz").status_code == 200
    assert shop.client.get("/readyz").text.strip() == "ready"
    docs = shop.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = shop.client.get("/openapi.json").json()["paths"]
    assert {"/carts/{cart_id}/items", "/orders/{order_id}/pay", "/products/{sku}"} <= set(paths)
    shop.client.get("/products")
    metrics = shop.client.get("/metrics").text
    assert 'shopstream_http_requests_total{method="GET",route="/products",status="200"}' in metrics
    assert "shopstream_outbox_relay_lag_seconds_bucket" in metrics


def test_metrics_of_several_workers_are_summed(
    stack: StackEndpoints, used_names: list[str], tmp_path: Path
) -> None:
    """``serve --workers 2``: whichever worker answers the scrape, /metrics counts the
    requests of both (40 requests on fresh connections land on both workers)."""
    if not stack.postgres_url:
        pytest.skip("--workers needs PostgreSQL (set TEST_POSTGRES_URL)")
    prefix = f"t-svc-workers-{uuid.uuid4().hex[:8]}-"
    used_names.append(prefix)
    database = f"test_{uuid.uuid4().hex[:12]}"
    url = create_postgres_database(stack.postgres_url, database)
    settings = Settings.load(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.registry_url,
        database_url=url,
        shopstream_topic_prefix=prefix,
    )
    create_project_topics(settings, partitions=3)
    env = service_env(settings)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service = ServiceProcess(env, tmp_path / "serve.log", args=["--workers", "2"])
    try:
        service.start()
        for _ in range(40):
            assert httpx.get(f"{service.url}/products", timeout=30).status_code == 200
        counted = 'shopstream_http_requests_total{method="GET",route="/products",status="200"}'
        for _ in range(10):
            lines = httpx.get(f"{service.url}/metrics", timeout=30).text.splitlines()
            assert f"{counted} 40.0" in lines, [line for line in lines if counted in line]
        assert service.terminate() == 0, service.log_text()[-2000:]
        pids = {line for line in service.log_text().splitlines() if '"event": "serving"' in line}
        assert len(pids) == 2
    finally:
        service.kill9()
        drop_postgres_database(stack.postgres_url, database)


# -- products ------------------------------------------------------------------------


def test_products_come_from_the_catalog(shop: Shop) -> None:
    listed = shop.client.get("/products").json()
    assert len(listed) == len(CATALOG.products)
    assert {p["sku"]: Decimal(p["price"]) for p in listed} == PRICE
    one = shop.client.get(f"/products/{SKU_A}")
    assert one.json()["price"] == str(PRICE[SKU_A]) and one.json()["currency"] == "EUR"
    missing = shop.client.get("/products/NOPE-0000")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown-product"


# -- the happy paths -----------------------------------------------------------------


def test_cart_to_shipped_order(shop: Shop) -> None:
    before = shop.outbox_rows()
    cart = fill_cart(shop, {SKU_A: 2, SKU_B: 1})
    again = shop.post(f"/carts/{cart}/items", {"customer_id": "alice", "sku": SKU_A, "quantity": 1})
    assert again.json()["items"][0 if SKU_A < SKU_B else 1]["quantity"] == 3
    removed = shop.client.delete(f"/carts/{cart}/items/{SKU_B}", params={"quantity": 1})
    assert removed.status_code == 200 and [i["sku"] for i in removed.json()["items"]] == [SKU_A]
    seen = shop.client.get(f"/carts/{cart}").json()
    assert seen["status"] == "OPEN" and seen["subtotal"] == str(PRICE[SKU_A] * 3)
    order = checkout(shop, cart)
    total = PRICE[SKU_A] * 3
    assert order["status"] == "PENDING_PAYMENT" and Decimal(order["total"]) == total
    assert order["lines"] == [{"sku": SKU_A, "quantity": 3, "unit_price": str(PRICE[SKU_A])}]
    assert shop.client.get(f"/carts/{cart}").json()["status"] == "CHECKED_OUT"
    oid = order["order_id"]
    paid = shop.post(f"/orders/{oid}/pay", {"payment_id": "pay-1", "amount": str(total)})
    assert paid.status_code == 200 and paid.json()["status"] == "PAID"
    assert shop.post(f"/orders/{oid}/confirm").json()["status"] == "CONFIRMED"
    shipped = shop.post(f"/orders/{oid}/ship", {"carrier": "DHL", "tracking_number": "T1"})
    assert shipped.json()["status"] == "SHIPPED" and shipped.json()["carrier"] == "DHL"
    assert shop.client.get(f"/orders/{oid}").json()["status"] == "SHIPPED"
    # 3 adds + 1 remove + checkout (2 events) + pay + confirm + ship
    assert shop.outbox_rows() - before == 9


def test_cancel_then_pay_is_refused_with_the_current_state(shop: Shop) -> None:
    order = checkout(shop, fill_cart(shop, {SKU_B: 1}))["order_id"]
    cancelled = shop.post(f"/orders/{order}/cancel", {"reason": "customer-request"})
    assert cancelled.status_code == 200 and cancelled.json()["cancel_reason"] == "customer-request"
    before = shop.outbox_rows()
    pay = shop.post(f"/orders/{order}/pay", {"payment_id": "p", "amount": str(PRICE[SKU_B])})
    assert pay.status_code == 409
    assert pay.json()["error"] == "illegal-transition"
    assert pay.json()["state"]["status"] == "CANCELLED"
    assert shop.outbox_rows() == before


# -- refusals: 404, 409, 422; none writes an event ---------------------------------------


def test_refused_commands_write_no_event(shop: Shop) -> None:
    done_cart = fill_cart(shop, {SKU_A: 1})
    order = checkout(shop, done_cart)
    oid, total = order["order_id"], order["total"]
    open_cart = fill_cart(shop, {SKU_A: 2}, customer="bob")
    empty_cart = fill_cart(shop, {SKU_B: 1})
    assert shop.client.delete(f"/carts/{empty_cart}/items/{SKU_B}").status_code == 200
    item = {"customer_id": "alice", "sku": SKU_A, "quantity": 1}
    before = shop.outbox_rows()
    cases: list[tuple[str, httpx.Response, int, str]] = [
        ("unknown cart", shop.client.get("/carts/nope"), 404, "unknown-cart"),
        ("unknown cart", shop.client.delete(f"/carts/nope/items/{SKU_A}"), 404, "unknown-cart"),
        ("unknown cart", shop.post("/carts/nope/checkout"), 404, "unknown-cart"),
        ("not in cart", shop.client.delete(f"/carts/{open_cart}/items/{SKU_B}"), 404, ""),
        (
            "unknown product",
            shop.post(f"/carts/{open_cart}/items", {**item, "sku": "X-1"}),
            404,
            "",
        ),
        ("unknown order", shop.client.get("/orders/nope"), 404, "unknown-order"),
        (
            "unknown order",
            shop.post("/orders/nope/pay", {"payment_id": "p", "amount": "1"}),
            404,
            "",
        ),
        ("unknown order", shop.post("/orders/nope/confirm"), 404, "unknown-order"),
        (
            "unknown order",
            shop.post("/orders/nope/ship", {"carrier": "c", "tracking_number": "t"}),
            404,
            "",
        ),
        ("unknown order", shop.post("/orders/nope/cancel", {"reason": "r"}), 404, ""),
        ("checked out", shop.post(f"/carts/{done_cart}/items", item), 409, "cart-checked-out"),
        ("checked out", shop.client.delete(f"/carts/{done_cart}/items/{SKU_A}"), 409, ""),
        ("checked out", shop.post(f"/carts/{done_cart}/checkout"), 409, "cart-checked-out"),
        ("other customer", shop.post(f"/carts/{open_cart}/items", item), 409, ""),
        ("too many", shop.client.delete(f"/carts/{open_cart}/items/{SKU_A}?quantity=3"), 409, ""),
        ("empty cart", shop.post(f"/carts/{empty_cart}/checkout"), 409, "empty-cart"),
        ("order exists", shop.post(f"/carts/{open_cart}/checkout", {"order_id": oid}), 409, ""),
        ("unpaid", shop.post(f"/orders/{oid}/confirm"), 409, "illegal-transition"),
        (
            "unpaid",
            shop.post(f"/orders/{oid}/ship", {"carrier": "c", "tracking_number": "t"}),
            409,
            "",
        ),
        (
            "amount",
            shop.post(f"/orders/{oid}/pay", {"payment_id": "p", "amount": "0.01"}),
            409,
            "payment-mismatch",
        ),
        (
            "currency",
            shop.post(
                f"/orders/{oid}/pay", {"payment_id": "p", "amount": total, "currency": "USD"}
            ),
            409,
            "",
        ),
    ]
    for name, answer, status, error in cases:
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
        if error:
            assert answer.json()["error"] == error, name
        if status == 409:
            assert "state" in answer.json(), name
    invalid: list[tuple[httpx.Response, str]] = [
        (shop.post(f"/carts/{open_cart}/items", {**item, "quantity": 0}), "quantity"),
        (shop.post(f"/carts/{open_cart}/items", {**item, "quantity": "2"}), "quantity"),
        (shop.post(f"/carts/{open_cart}/items", {"sku": SKU_A, "quantity": 1}), "customer_id"),
        (shop.post(f"/carts/{open_cart}/items", {**item, "unit_price": "0.01"}), "unit_price"),
        (shop.post(f"/carts/{open_cart}/items", {**item, "customer_id": "  "}), "customer_id"),
        (shop.post(f"/carts/{open_cart}/items"), "body"),
        (shop.client.delete(f"/carts/{open_cart}/items/{SKU_A}?quantity=-1"), "quantity"),
        (shop.post(f"/orders/{oid}/pay", {"payment_id": "p", "amount": 12.5}), "amount"),
        (shop.post(f"/orders/{oid}/pay", {"payment_id": "p", "amount": "1.234"}), "amount"),
        (
            shop.post(
                f"/orders/{oid}/pay", {"payment_id": "p", "amount": total, "currency": "eur"}
            ),
            "currency",
        ),
        (shop.post(f"/orders/{oid}/ship", {"carrier": "DHL"}), "tracking_number"),
        (shop.post(f"/orders/{oid}/cancel", {"reason": ""}), "reason"),
    ]
    for answer, field in invalid:
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field, answer.text
    assert shop.outbox_rows() == before
    assert shop.client.get(f"/orders/{oid}").json()["status"] == "PENDING_PAYMENT"
    assert shop.client.get(f"/carts/{open_cart}").json()["items"][0]["quantity"] == 2


# -- Idempotency-Key -----------------------------------------------------------------


def test_idempotency_key_replays_the_first_response(shop: Shop) -> None:
    cart, key = new_id("cart"), new_id("key")
    body = {"customer_id": "carol", "sku": SKU_A, "quantity": 1}
    before = shop.outbox_rows()
    first = shop.post(f"/carts/{cart}/items", body, key=key)
    again = shop.post(f"/carts/{cart}/items", body, key=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert shop.outbox_rows() - before == 1
    assert shop.client.get(f"/carts/{cart}").json()["items"][0]["quantity"] == 1
    reused = shop.post(f"/carts/{cart}/items", {**body, "quantity": 2}, key=key)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency-key-reused"
    elsewhere = shop.post(f"/carts/{new_id('cart')}/items", body, key=key)
    assert elsewhere.status_code == 422
    # a refusal is stored too: the retry gets the same 409, nothing is written
    refused_key = new_id("key")
    gone = shop.post(f"/orders/{new_id('order')}/confirm", key=refused_key)
    assert shop.post(f"/orders/{new_id('order')}/confirm", key=refused_key).status_code == 422
    order_path = gone.request.url.path
    retry = shop.client.post(order_path, headers={"Idempotency-Key": f'"{refused_key}"'})
    assert retry.status_code == gone.status_code == 404
    assert retry.headers["Idempotent-Replayed"] == "true"
    # DELETE honours the key as well
    delete_key = new_id("key")
    path = f"/carts/{cart}/items/{SKU_A}"
    one = shop.client.delete(path, headers={"Idempotency-Key": delete_key})
    two = shop.client.delete(path, headers={"Idempotency-Key": delete_key})
    assert (
        one.status_code == two.status_code == 200 and two.headers["Idempotent-Replayed"] == "true"
    )
    assert shop.outbox_rows() - before == 2
    bad = shop.client.post(f"/carts/{cart}/checkout", headers={"Idempotency-Key": '""'})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid-idempotency-key"


def test_a_key_in_flight_is_refused(shop: Shop) -> None:
    if shop.engine.dialect.name != "postgresql":
        pytest.skip("the in-flight lock across processes is PostgreSQL's advisory lock")
    key = new_id("key")
    lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    url = shop.engine.url.render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(url)) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))  # as a running request
        body = {"customer_id": "dave", "sku": SKU_A, "quantity": 1}
        busy = shop.post(f"/carts/{new_id('cart')}/items", body, key=key)
        assert busy.status_code == 409 and busy.json()["error"] == "idempotency-key-in-flight"
        holder.rollback()
    assert shop.post(f"/carts/{new_id('cart')}/items", body, key=key).status_code == 200


# -- what reached Kafka and the read models --------------------------------------------


def test_every_committed_event_reaches_kafka_and_the_read_models(shop: Shop) -> None:
    """On SQLite, the outbox against Kafka only (the consumer groups run on PostgreSQL
    here and in the simulate and load tests)."""
    postgres = shop.engine.dialect.name == "postgresql"
    verdict = outbox_verdict(shop.settings, shop.engine, shop.workdir, read_models=postgres)
    print(f"[services api {shop.engine.dialect.name}] {verdict.summary()}")
    verdict.assert_exact()
    assert verdict.duplicated == 0
