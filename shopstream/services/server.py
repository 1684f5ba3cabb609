"""``shopstream serve`` and ``shopstream relay``: process lifecycles.

``serve`` checks the database (and, with its relay, Kafka, the registry and the
topics), migrates the schema, seeds the catalog, binds its socket (all failures one
line, exit 2), then runs the API on uvicorn with the relay on a thread. On SIGTERM or
SIGINT uvicorn stops accepting, finishes the requests in hand, and the lifespan stops
the relay after its current pass (marked sent or left pending, never half-marked).
With ``--workers N`` the parent forwards SIGTERM/SIGINT to the workers, and a worker
gets SIGTERM from the kernel when the parent dies, even by ``kill -9``
(:func:`_stops_with_parent`).

``relay`` runs only the relay, with ``/healthz``, ``/readyz`` and ``/metrics`` on its
own port like the consumer daemons, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy import Engine, inspect

from consumers.runtime.health import HealthServer
from shopstream.config import Settings
from shopstream.db.engine import check_database
from shopstream.db.migrate import upgrade
from shopstream.errors import ShopstreamError, UsageError
from shopstream.events import now_utc
from shopstream.logs import get_logger
from shopstream.services import idempotency, outbox
from shopstream.services.api import create_app
from shopstream.services.commands import seed_products
from shopstream.services.metrics import ServiceMetrics, shared_across_workers, worker_exited
from shopstream.services.relay import OutboxRelay, RelayOptions
from shopstream.services.transactions import (
    REQUEST_THREADS,
    CommandExecutor,
    make_service_engine,
)
from shopstream.simulation.simulator import ProductCatalog
from shopstream.sockets import listening_socket

log = get_logger("shopstream.serve")

PURGE_EVERY_S = 600.0
STALL_AFTER_S = 60.0
KEEP_ALIVE_S = 30
"""Idle keep-alive connections are closed after this (uvicorn's 5 s default raced with
clients reusing a pooled connection under load: a reset instead of an answer)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""What stops ``serve`` cleanly (``--workers``: forwarded to every worker)."""
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends the caller when its parent dies."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    relay: bool = True
    """Run the outbox relay in this process (off when a separate ``shopstream relay`` runs)."""
    relay_options: RelayOptions = field(default_factory=RelayOptions)
    shutdown_timeout_s: float = 30.0
    workers: int = 1
    """Processes serving the socket (PostgreSQL only above 1)."""


def _bind(host: str, port: int) -> socket.socket:
    sock = listening_socket(host, port, backlog=2048)
    sock.set_inheritable(True)  # shared with the worker processes
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM/SIGINT like the daemons: it finishes the
    requests in hand and returns (exit 0) instead of re-raising the signal (which
    uvicorn does so the process dies of it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(signum: int, _frame: FrameType | None) -> None:
            if not self.should_exit:
                log.info("signal received, stopping", signal=signal.Signals(signum).name)
            self.force_exit = self.should_exit and signum == signal.SIGINT
            self.should_exit = True

        previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class _RelayThread:
    """The relay on a thread, its failure kept for the health checks."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay
        self.thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.relay.run()
        except BaseException as exc:
            self.error = exc
            log.error("relay stopped", error=f"{type(exc).__name__}: {exc}")

    def problem(self) -> str | None:
        if self.error is not None:
            return f"relay failed: {self.error}"
        if time.monotonic() - self.relay.last_progress > STALL_AFTER_S:
            return "relay stalled"
        return None


def _purge_keys(engine: Engine, stop: threading.Event) -> None:
    while not stop.wait(PURGE_EVERY_S):
        try:
            with engine.begin() as connection:
                purged = idempotency.purge(connection, now_utc())
            if purged:
                log.info("idempotency keys purged", keys=purged)
        except Exception as exc:  # the next round tries again
            log.warning("idempotency key purge failed", error=str(exc))


def _database_ok(engine: Engine) -> bool:
    try:
        check_database(engine)
    except ShopstreamError:
        return False
    return True


def serve(settings: Settings, options: ServeOptions) -> int:
    """Run the API (and its relay) until SIGTERM/SIGINT; returns the exit code.

    With ``workers`` > 1 (PostgreSQL only) the checks, the migration and the socket are
    done once, then that many processes are forked, each with its own engine, relay
    (one publishes at a time: the advisory lock) and uvicorn on the shared socket.
    """
    if options.workers > 1 and settings.database_url.startswith("sqlite"):
        raise UsageError("--workers above 1 needs PostgreSQL (SQLite has one writer process)")
    _prepare(settings, options)
    sock = _bind(options.host, options.port)
    if options.workers == 1:
        return _run_worker(settings, options, sock)
    return _run_workers(settings, options, sock)


def _prepare(settings: Settings, options: ServeOptions) -> None:
    """Database reachable and migrated, catalog seeded, Kafka/registry/topics there."""
    engine = make_service_engine(settings.database_url)
    try:
        check_database(engine)
        upgrade(engine)
        with engine.begin() as connection:
            seed_products(connection, ProductCatalog.load())
        if options.relay:
            OutboxRelay(settings, engine, ServiceMetrics(), threading.Event()).check()
    finally:
        engine.dispose()


def _run_workers(settings: Settings, options: ServeOptions, sock: socket.socket) -> int:
    """Fork the workers (their metrics summed: :func:`shared_across_workers`), forward
    SIGTERM/SIGINT to them, wait; 1 if any failed (dying of the signal forwarded to
    it is stopping, not failing)."""
    with shared_across_workers():
        parent = os.getpid()
        children: list[int] = []
        # held until every worker is forked and the parent forwards them: a SIGTERM in
        # between is forwarded then, instead of killing the parent alone
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for _ in range(options.workers):
            pid = os.fork()
            if pid == 0:  # the worker: its own engine, relay and server on the shared socket
                code = 1
                try:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                    if _stops_with_parent(parent):
                        code = _run_worker(settings, options, sock)
                finally:
                    os._exit(code)
            children.append(pid)

        forwarded: set[int] = set()

        def forward(signum: int, _frame: FrameType | None) -> None:
            forwarded.add(signum)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)

        previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        failed = 0
        try:
            for child in children:
                _, status = os.waitpid(child, 0)
                worker_exited(child)
                code = os.waitstatus_to_exitcode(status)
                # a worker still starting (no handler of its own yet) dies of the
                # signal it was forwarded: it stopped as asked, it did not fail
                failed += code != 0 and -code not in forwarded
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if failed:
        log.error("workers failed", failed=failed, workers=options.workers)
    return 1 if failed else 0


def _stops_with_parent(parent: int) -> bool:
    """In a worker just forked by ``parent``: have the kernel send it SIGTERM when the
    parent dies, even by ``kill -9`` (Linux's ``PR_SET_PDEATHSIG``), so no orphan keeps
    serving the socket; the worker then stops as on any SIGTERM. The signal follows the
    thread that forked: the parent's main thread, which lives until the workers are
    gone. False when the parent died before this call (the signal will never come).
    Elsewhere than Linux there is no such signal: True."""
    if sys.platform != "linux":
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM)) != 0:
        log.error("prctl(PR_SET_PDEATHSIG) failed", error=os.strerror(ctypes.get_errno()))
        return False
    if os.getppid() != parent:
        log.warning("parent gone before the worker started, stopping", parent=parent)
        return False
    return True


def _run_worker(settings: Settings, options: ServeOptions, sock: socket.socket) -> int:
    """One process: the API on uvicorn over ``sock`` (and the relay on a thread)."""
    engine = make_service_engine(settings.database_url)
    try:
        metrics = ServiceMetrics()
        stop = threading.Event()
        relay = (
            _RelayThread(OutboxRelay(settings, engine, metrics, stop, options.relay_options))
            if options.relay
            else None
        )
        notifier = (
            outbox.CommitNotifier(settings.database_url, stop)
            if engine.dialect.name == "postgresql"
            else None
        )
        wake = notifier.wake if notifier else relay.relay.wake.set if relay else None
        executor = CommandExecutor(engine, wake)

        def healthy() -> tuple[bool, str]:
            problem = relay.problem() if relay else None
            return (problem is None, problem or "ok")

        def ready() -> tuple[bool, str]:
            ok, text = healthy()
            if not ok:
                return ok, text
            if not _database_ok(engine):
                return False, "database unavailable"
            return True, "ready"

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
            purger = threading.Thread(
                target=_purge_keys, args=(engine, stop), name="key-purge", daemon=True
            )
            purger.start()
            if notifier is not None:
                threading.Thread(target=notifier.run, name="outbox-notify", daemon=True).start()
            if relay is not None:
                relay.thread.start()
            log.info(
                "serving",
                url=f"http://{options.host}:{sock.getsockname()[1]}",
                relay=relay is not None,
                database=engine.dialect.name,
                pid=os.getpid(),
            )
            try:
                yield
            finally:
                stop.set()
                if relay is not None:
                    relay.thread.join(options.shutdown_timeout_s)
                log.info("stopped")

        app = create_app(executor, metrics, healthy, ready, lifespan)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=int(options.shutdown_timeout_s),
            backlog=2048,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        _Server(config).run(sockets=[sock])
        if relay is not None and relay.thread.is_alive():
            log.error("relay did not stop in time")
            return 1
        return 0
    finally:
        engine.dispose()


def run_relay(
    settings: Settings, options: RelayOptions, http_port: int | None, http_host: str
) -> int:
    """``shopstream relay``: the relay alone until SIGTERM/SIGINT."""
    engine = make_service_engine(settings.database_url)
    try:
        check_database(engine)
        if not inspect(engine).has_table("service_outbox"):
            raise UsageError(
                "the database has no outbox table (run 'shopstream db upgrade' or start "
                "'shopstream serve' once)"
            )
        metrics = ServiceMetrics()
        stop = threading.Event()
        relay = OutboxRelay(settings, engine, metrics, stop, options)
        relay.check()

        def healthy() -> tuple[bool, str]:
            stalled = time.monotonic() - relay.last_progress > STALL_AFTER_S
            return (not stalled, "relay stalled" if stalled else "ok")

        def ready() -> tuple[bool, str]:
            ok, text = healthy()
            if not ok:
                return ok, text
            if not _database_ok(engine):
                return False, "database unavailable"
            return (
                True,
                "ready" if relay.leader or engine.dialect.name != "postgresql" else "standby",
            )

        http = (
            HealthServer(metrics.registry, healthy, ready, http_port, host=http_host)
            if http_port is not None
            else None
        )
        if http is not None:
            http.start()

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", signal=signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
        log.info("relay running", http_port=http.port if http else None)
        try:
            relay.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if http is not None:
                http.stop()
        log.info("relay stopped")
        return 0
    finally:
        engine.dispose()
