"""The HTTP API (FastAPI): products, carts, orders, health and metrics.

Routes map one to one to :mod:`shopstream.services.commands`; every POST and DELETE
runs through :class:`~shopstream.services.transactions.CommandExecutor` (one
transaction, ``Idempotency-Key``). Errors are JSON objects ``{"error": <code>,
"detail": <text>}``, plus ``"field"`` on 422 (the offending field) and ``"state"`` on
409 (the aggregate's current state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Connection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopstream.events import EventValidationError
from shopstream.logs import get_logger
from shopstream.services import commands, idempotency
from shopstream.services.commands import Result
from shopstream.services.metrics import ServiceMetrics
from shopstream.services.transactions import CommandExecutor
from shopstream.services.transactions import Request as CommandRequest
from shopstream.services.transactions import Response as CommandResponse

log = get_logger("shopstream.api")

Check = Callable[[], tuple[bool, str]]
Text = Annotated[str, Field(min_length=1)]
AVRO_INT_MAX = 2**31 - 1
"""Quantities are Avro ints; the domain's own limit is the typed events' check (422)."""
Quantity = Annotated[int, Field(gt=0, le=AVRO_INT_MAX, strict=True)]


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('money must be a string like "12.50", not a JSON number with a fraction')
    return value


Money = Annotated[Decimal, BeforeValidator(_no_float)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddItem(Body):
    customer_id: Text
    sku: Text
    quantity: Quantity


class Checkout(Body):
    order_id: Text | None = None
    """The new order's id (a new UUID when absent)."""


class Pay(Body):
    payment_id: Text
    amount: Money
    currency: Text | None = None
    """The order's currency when absent."""


class Ship(Body):
    carrier: Text
    tracking_number: Text


class Cancel(Body):
    reason: Text


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


async def command_request(request: Request) -> CommandRequest:
    """The request's Idempotency-Key (checked) and fingerprint."""
    header = request.headers.get("idempotency-key")
    key = None
    if header is not None:
        key = idempotency.parse_key(header)
        if key is None:
            raise ApiError(
                400,
                "invalid-idempotency-key",
                f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} printable "
                "ASCII characters",
            )
    body = await request.body()
    return CommandRequest(key, idempotency.fingerprint(request.method, request.url.path, body))


Command = Annotated[CommandRequest, Depends(command_request)]


def create_app(
    executor: CommandExecutor,
    metrics: ServiceMetrics,
    healthy: Check,
    ready: Check,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="shopstream services",
        summary="Products, carts and orders; every command published through an outbox.",
        version="1",
        lifespan=lifespan,
    )

    def answer(response: CommandResponse) -> Response:
        headers = {}
        if response.replayed:
            headers[idempotency.REPLAY_HEADER] = "true"
            metrics.replays.inc()
        return Response(response.body, response.status_code, headers, media_type="application/json")

    def run(request: CommandRequest, command: Callable[[Connection, datetime], Result]) -> Response:
        try:
            return answer(executor.execute(request, command))
        except idempotency.KeyInFlight:
            raise ApiError(
                409, "idempotency-key-in-flight", "a request with this key is still running"
            ) from None
        except idempotency.KeyReused:
            raise ApiError(
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was used for another request (method, path or body)",
            ) from None

    _install_error_handlers(app)
    app.add_middleware(Observer, metrics=metrics)

    # -- operations -------------------------------------------------------------------

    def check_response(check: Check) -> PlainTextResponse:
        ok, text = check()
        return PlainTextResponse(text + "\n", 200 if ok else 503)

    @app.get("/healthz", tags=["operations"], response_class=PlainTextResponse)
    def healthz() -> PlainTextResponse:
        return check_response(healthy)

    @app.get("/readyz", tags=["operations"], response_class=PlainTextResponse)
    def readyz() -> PlainTextResponse:
        return check_response(ready)

    @app.get("/metrics", tags=["operations"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.exposed), media_type=CONTENT_TYPE_LATEST)

    # -- products ----------------------------------------------------------------------

    @app.get("/products", tags=["products"])
    def list_products() -> Response:
        return answer(executor.query(commands.list_products))

    @app.get("/products/{sku}", tags=["products"])
    def get_product(sku: str) -> Response:
        return answer(executor.query(lambda c: commands.get_product(c, sku)))

    # -- carts -------------------------------------------------------------------------

    @app.post("/carts/{cart_id}/items", tags=["carts"])
    def add_item(cart_id: str, body: AddItem, request: Command) -> Response:
        """Add ``quantity`` of ``sku`` (at the catalog's price); the first item opens the
        cart for ``customer_id``. → CartItemAdded"""
        return run(
            request,
            lambda c, now: commands.add_item(
                c, now, cart_id, body.customer_id, body.sku, body.quantity
            ),
        )

    @app.delete("/carts/{cart_id}/items/{sku}", tags=["carts"])
    def remove_item(
        cart_id: str,
        sku: str,
        request: Command,
        quantity: Annotated[int | None, Query(gt=0, le=AVRO_INT_MAX)] = None,
    ) -> Response:
        """Take ``quantity`` (default: all) of ``sku`` out of the cart. → CartItemRemoved"""
        return run(request, lambda c, now: commands.remove_item(c, now, cart_id, sku, quantity))

    @app.get("/carts/{cart_id}", tags=["carts"])
    def get_cart(cart_id: str) -> Response:
        return answer(executor.query(lambda c: commands.get_cart(c, cart_id)))

    @app.post("/carts/{cart_id}/checkout", tags=["carts"], status_code=201)
    def checkout(cart_id: str, request: Command, body: Checkout | None = None) -> Response:
        """Close the cart and create its order. → CartCheckedOut, OrderCreated"""
        order_id = body.order_id if body else None
        return run(request, lambda c, now: commands.checkout(c, now, cart_id, order_id))

    # -- orders ------------------------------------------------------------------------

    @app.get("/orders/{order_id}", tags=["orders"])
    def get_order(order_id: str) -> Response:
        return answer(executor.query(lambda c: commands.get_order(c, order_id)))

    @app.post("/orders/{order_id}/pay", tags=["orders"])
    def pay(order_id: str, body: Pay, request: Command) -> Response:
        """Pay the order's total (a different amount or currency → 409). → OrderPaid"""
        return run(
            request,
            lambda c, now: commands.pay(
                c, now, order_id, body.payment_id, body.amount, body.currency
            ),
        )

    @app.post("/orders/{order_id}/confirm", tags=["orders"])
    def confirm(order_id: str, request: Command) -> Response:
        """→ OrderConfirmed"""
        return run(request, lambda c, now: commands.confirm(c, now, order_id))

    @app.post("/orders/{order_id}/ship", tags=["orders"])
    def ship(order_id: str, body: Ship, request: Command) -> Response:
        """→ OrderShipped"""
        return run(
            request,
            lambda c, now: commands.ship(c, now, order_id, body.carrier, body.tracking_number),
        )

    @app.post("/orders/{order_id}/cancel", tags=["orders"])
    def cancel(order_id: str, body: Cancel, request: Command) -> Response:
        """→ OrderCancelled"""
        return run(request, lambda c, now: commands.cancel(c, now, order_id, body.reason))

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Errors as JSON: ``error``, ``detail``, and the ``field`` of a 422."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        location = [str(part) for part in first.get("loc", ())]
        field = ".".join(location[1:]) or (location[0] if location else "body")
        return JSONResponse(
            {"error": "invalid-request", "field": field, "detail": str(first.get("msg"))}, 422
        )

    @app.exception_handler(EventValidationError)
    async def invalid_value(_request: Request, exc: EventValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid-request", "field": exc.field_name, "detail": exc.rule}, 422
        )


class Observer:
    """A structured log line and metrics for every request (a plain ASGI middleware:
    Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status, replayed = 500, False

        async def observed(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                replayed = any(name == _REPLAY for name, _ in message.get("headers", ()))
            await send(message)

        try:
            await self._app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self._metrics.requests.labels(method, route, str(status)).inc()
            self._metrics.request_seconds.labels(method, route).observe(elapsed)
            log.info(
                "request",
                method=method,
                path=scope["path"],
                status=status,
                ms=round(elapsed * 1000, 2),
                replayed=replayed,
            )


_REPLAY = idempotency.REPLAY_HEADER.lower().encode()
