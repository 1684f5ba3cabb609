"""The console's web app: pages, their JSON, live streams, health and metrics.

Pages (one HTML shell each, drawn by ``static/console.js``): ``/`` the pipeline,
``/lag``, ``/shop``, ``/dead-letters``, ``/orders`` and ``/orders/{id}`` (an order's
timeline), ``/schemas``. Live data comes as server-sent events: ``/api/stream`` sends
the sampler's history once, then every new sample; ``/api/orders/{id}/stream`` sends
the order's timeline whenever it changes. ``POST /api/redrive`` redrives one dead
letter (the page asks for confirmation first; the request must carry the
``X-Shopstream-Console`` header, which a cross-site form cannot send).

With a token configured (``SHOPSTREAM_CONSOLE_TOKEN``) every route but ``/healthz``
wants it: ``Authorization: Bearer <token>``, or the cookie set by opening any page
once with ``?token=<token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from shopstream.config import Settings
from shopstream.console import views
from shopstream.console.sampler import Sampler
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.inspection.decode import MessageDecoder
from shopstream.inspection.peek import make_decoder
from shopstream.inspection.timeline import UnknownOrder
from shopstream.logs import get_logger
from shopstream.redrive import Coordinates, Selection, redrive

log = get_logger("shopstream.console")

PAGES = {
    "/": "pipeline",
    "/lag": "lag",
    "/shop": "shop",
    "/dead-letters": "dead-letters",
    "/orders": "orders",
    "/schemas": "schemas",
}
TOKEN_COOKIE = "shopstream_console_token"  # noqa: S105 (a cookie name)
CSRF_HEADER = "x-shopstream-console"
STREAM_POLL_S = 0.2
KEEPALIVE_S = 15.0
MAX_LETTERS = 500
TIMELINE_POLL_S = 0.5


@dataclass(frozen=True)
class ConsoleOptions:
    interval: float = 2.0
    """Seconds between samples of the pipeline."""
    history_s: float = 600.0
    """How far back the charts go."""


class RedriveRequest(BaseModel):
    """One dead letter to redrive, by its coordinates in its DLQ."""

    topic: str = Field(min_length=1, max_length=249)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    confirm: bool = False


class _SamplerCollector:
    """Prometheus view of the sampler: samples taken, failed, and each group's lag."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "shopstream_console_samples", "Pipeline samples taken", value=self._sampler.cycles
        )
        yield CounterMetricFamily(
            "shopstream_console_sample_errors",
            "Samples with a failed part",
            value=self._sampler.errors,
        )
        lag = GaugeMetricFamily(
            "shopstream_console_group_lag",
            "End offsets minus the database's offsets, per group",
            labels=["group"],
        )
        for group in (self._sampler.latest or {}).get("groups", []):
            lag.add_metric([group["group"]], group.get("lag", 0))
        yield lag


def _shell() -> str:
    return _static_dir().joinpath("console.html").read_text("utf-8")


@dataclass
class _Console:
    """What the routes share: settings, the sampler, metrics, the shutdown flag."""

    settings: Settings
    options: ConsoleOptions
    sampler: Sampler
    stopping: asyncio.Event
    registry: CollectorRegistry
    requests: Counter
    streams: Gauge
    shell: str

    # -- pages and operations --------------------------------------------------------------

    def page(self, name: str) -> HTMLResponse:
        return HTMLResponse(self.shell.replace("{{page}}", name))

    def order_page(self, order_id: str) -> HTMLResponse:
        return self.page("order")

    def healthz(self) -> JSONResponse:
        latest = self.sampler.latest
        if latest is None:
            return JSONResponse({"status": "starting"})
        age = time.time() - latest["t"] / 1000
        healthy = age < max(30.0, self.options.interval * 5)
        body = {
            "status": "ok" if healthy else "stale",
            "last_sample_age_s": round(age, 1),
            "errors": latest.get("errors", []),
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    def metrics(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    # -- data --------------------------------------------------------------------------------

    def snapshot(self) -> JSONResponse:
        return JSONResponse({"latest": self.sampler.latest, "history": self.sampler.history()})

    async def stream(self, request: Request) -> StreamingResponse:
        return _event_stream(self._samples(request))

    async def _samples(self, request: Request) -> AsyncIterator[str]:
        sampler = self.sampler
        self.streams.inc()
        try:
            yield _sse("history", sampler.history())
            seen = -1
            quiet_since = time.monotonic()
            while not self.stopping.is_set() and not await request.is_disconnected():
                latest, seq = sampler.latest, sampler.seq
                if latest is not None and seq != seen:
                    seen = seq
                    quiet_since = time.monotonic()
                    yield _sse("sample", latest)
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keepalive\n\n"
                await asyncio.sleep(STREAM_POLL_S)
        finally:
            self.streams.dec()

    def dead_letters(
        self, limit: int = views.DEAD_LETTERS_SHOWN, key: str | None = None
    ) -> JSONResponse:
        if not 1 <= limit <= MAX_LETTERS:
            raise UsageError(f"limit must be between 1 and {MAX_LETTERS}")
        found = views.dead_letters(self.settings, limit, key or None)
        return JSONResponse({"letters": found})

    def order(self, order_id: str) -> JSONResponse:
        return JSONResponse(views.timeline(self.settings, order_id))

    async def order_stream(self, order_id: str, request: Request) -> StreamingResponse:
        return _event_stream(self._timelines(order_id, request))

    async def _timelines(self, order_id: str, request: Request) -> AsyncIterator[str]:
        self.streams.inc()
        try:
            last = ""
            decoder = await to_thread.run_sync(make_decoder, self.settings)
            while not self.stopping.is_set() and not await request.is_disconnected():
                kind, data = await to_thread.run_sync(
                    _timeline_or_error, self.settings, order_id, decoder
                )
                shown = json.dumps(_without_timings(data), sort_keys=True)
                if shown != last:
                    last = shown
                    yield _sse(kind, data)
                await _sleep_unless(self.stopping, TIMELINE_POLL_S)
        finally:
            self.streams.dec()

    def schemas(self) -> JSONResponse:
        return JSONResponse(views.schemas(self.settings))

    def redrive_one(self, body: RedriveRequest, request: Request) -> JSONResponse:
        if request.headers.get(CSRF_HEADER) != "redrive":
            return JSONResponse({"error": f"missing the {CSRF_HEADER} header"}, status_code=403)
        if not body.confirm:
            raise UsageError("a redrive needs confirm: true")
        settings = self.settings
        selection = Selection(
            topic=settings.topic(body.topic.removeprefix(settings.shopstream_topic_prefix)),
            at=(Coordinates(body.partition, body.offset),),
        )
        report = redrive(settings, selection, timeout=5.0)
        if not report.items:
            raise UsageError(f"no dead letter at {body.topic} {body.partition}:{body.offset}")
        log.info(
            "console.redrive",
            topic=report.dlq_topic,
            partition=body.partition,
            offset=body.offset,
            status=report.items[0].status,
        )
        return JSONResponse(report.to_json())


def create_app(
    settings: Settings, options: ConsoleOptions | None = None, sampler: Sampler | None = None
) -> FastAPI:
    """The console app; its lifespan starts and stops the sampler."""
    options = options or ConsoleOptions()
    sampler = sampler or Sampler(settings, interval=options.interval, history_s=options.history_s)
    registry = CollectorRegistry()
    registry.register(_SamplerCollector(sampler))
    console = _Console(
        settings=settings,
        options=options,
        sampler=sampler,
        stopping=asyncio.Event(),
        registry=registry,
        requests=Counter(
            "shopstream_console_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=registry,
        ),
        streams=Gauge("shopstream_console_streams", "Open live streams (SSE)", registry=registry),
        shell=_shell(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sampler.start()
        log.info("console.sampling", interval=options.interval)
        try:
            yield
        finally:
            console.stopping.set()
            await to_thread.run_sync(sampler.stop)
            log.info("console.stopped")

    app = FastAPI(
        title="shopstream console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.mount("/static", StaticFiles(directory=str(_static_dir())), name="static")
    app.middleware("http")(_guard_and_log(console))
    app.add_exception_handler(ShopstreamError, _one_line_error)  # type: ignore[arg-type]
    for path, name in PAGES.items():
        app.add_api_route(path, _page_route(console, name), methods=["GET"])
    routes: list[tuple[str, Callable[..., Any], str]] = [
        ("/orders/{order_id}", console.order_page, "GET"),
        ("/healthz", console.healthz, "GET"),
        ("/metrics", console.metrics, "GET"),
        ("/api/snapshot", console.snapshot, "GET"),
        ("/api/stream", console.stream, "GET"),
        ("/api/dead-letters", console.dead_letters, "GET"),
        ("/api/orders/{order_id}", console.order, "GET"),
        ("/api/orders/{order_id}/stream", console.order_stream, "GET"),
        ("/api/schemas", console.schemas, "GET"),
        ("/api/redrive", console.redrive_one, "POST"),
    ]
    for path, endpoint, method in routes:
        app.add_api_route(path, endpoint, methods=[method])
    return app


def _static_dir() -> Traversable:
    return files("shopstream.console").joinpath("static")


def _guard_and_log(
    console: _Console,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    token = console.settings.shopstream_console_token
    secret = token.get_secret_value() if token is not None else None

    async def guard_and_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        path = request.url.path
        if secret is not None and path != "/healthz":
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), secret.encode()):
                # the token once in the address: keep it in a cookie, drop it from the URL
                moved: Response = RedirectResponse(path, status_code=303)
                moved.set_cookie(TOKEN_COOKIE, secret, httponly=True, samesite="strict")
                return moved
            if not _authorized(request, secret):
                return JSONResponse({"error": "a console token is required"}, status_code=401)
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "static" if path.startswith("/static/") else "other")
        console.requests.labels(name, str(response.status_code)).inc()
        if not path.startswith(("/static/", "/api/stream")) and path != "/healthz":
            log.info(
                "console.request",
                method=request.method,
                path=name,
                status=response.status_code,
                ms=round((time.perf_counter() - began) * 1000, 1),
            )
        return response

    return guard_and_log


async def _one_line_error(_request: Request, exc: ShopstreamError) -> JSONResponse:
    status = 500
    if isinstance(exc, UnknownOrder):
        status = 404
    elif isinstance(exc, ConnectionFailed):
        status = 503
    elif isinstance(exc, UsageError):
        status = 400
    return JSONResponse({"error": " ".join(exc.message.split())}, status_code=status)


def _page_route(console: _Console, name: str) -> Callable[[], HTMLResponse]:
    def route() -> HTMLResponse:
        return console.page(name)

    return route


def _authorized(request: Request, secret: str) -> bool:
    header = request.headers.get("authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    given = given or request.cookies.get(TOKEN_COOKIE)
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _timeline_or_error(
    settings: Settings, order_id: str, decoder: MessageDecoder
) -> tuple[str, dict[str, Any]]:
    try:
        return "timeline", views.timeline(settings, order_id, decoder)
    except ShopstreamError as exc:
        return "problem", {"error": " ".join(exc.message.split())}


def _without_timings(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in {"seconds", "reads"}}


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
