"""Run one or several consumer groups in one process until SIGTERM/SIGINT.

Each group gets its own thread, consumer and dead-letter producer; they share one
database engine, one Prometheus registry and one HTTP endpoint. On SIGTERM or SIGINT
every group finishes the batch in hand, commits, leaves the group, and the process
exits 0 — or 1 if that takes longer than ``shutdown_timeout_s``. While the groups run,
the garbage collector is set for streaming (:mod:`consumers.runtime.gc_tuning`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from consumers.projections import projection_for
from consumers.projections.base import Projection
from consumers.runtime.gc_tuning import tuned_garbage_collector
from consumers.runtime.health import HealthServer
from consumers.runtime.metrics import ConsumerMetrics
from consumers.runtime.offset_store import OffsetStore
from consumers.runtime.runner import GroupRunner, RuntimeOptions
from shopstream.config import Settings
from shopstream.db.engine import check_database, describe_db_error, make_engine
from shopstream.errors import ConnectionFailed, ShopstreamError, UsageError
from shopstream.kafka.clients import check_broker
from shopstream.kafka.topics import existing_topics
from shopstream.logs import get_logger
from shopstream.registry.admin import check_registry

log = get_logger("shopstream.daemon")


@dataclass(frozen=True)
class DaemonOptions:
    http_port: int | None = 9400
    """None: no HTTP endpoint; 0: a free port (logged)."""
    http_host: str = "127.0.0.1"
    shutdown_timeout_s: float = 30.0


class GroupFailed(ShopstreamError):
    """A group stopped on an error it must not skip (e.g. a dead letter not written)."""


@dataclass
class _Worker:
    runner: GroupRunner
    thread: threading.Thread
    error: BaseException | None = None


class ConsumerDaemon:
    def __init__(
        self,
        settings: Settings,
        groups: Sequence[str],
        runtime: RuntimeOptions,
        options: DaemonOptions,
    ) -> None:
        self._settings = settings
        self._groups = list(dict.fromkeys(groups))
        self._runtime = runtime
        self._options = options
        self._stop = threading.Event()
        self._metrics = ConsumerMetrics()
        self._engine = make_engine(settings.database_url, settings=settings)
        self._workers: list[_Worker] = []
        self._http: HealthServer | None = None

    @property
    def http_port(self) -> int:
        return self._http.port if self._http else 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start every group, wait for a signal (or catch-up), stop them. Exit code."""
        projections = [projection_for(name) for name in self._groups]
        check_broker(self._settings)
        self._check_registry()
        check_database(self._engine)
        self._check_sole_topic(projections)
        if self._runtime.until_caught_up:
            self._check_topics_exist(projections)
        self._start_http()
        for projection in projections:
            runner = GroupRunner(
                self._settings, projection, self._engine, self._metrics, self._runtime, self._stop
            )
            worker = _Worker(
                runner, threading.Thread(name=projection.group_id, daemon=True, target=lambda: None)
            )
            worker.thread = threading.Thread(
                name=projection.group_id, daemon=True, target=self._work, args=(worker,)
            )
            self._workers.append(worker)
        previous = self._install_signals()
        try:
            for worker in self._workers:
                worker.runner.start()
            with tuned_garbage_collector():
                for worker in self._workers:
                    worker.thread.start()
                log.info("daemon running", groups=self._groups, http_port=self.http_port)
                while any(w.thread.is_alive() for w in self._workers) and not self._stop.is_set():
                    time.sleep(0.2)
                    if any(w.error is not None for w in self._workers):
                        self._stop.set()
                return self._shutdown()
        finally:
            self._restore_signals(previous)
            if self._http:
                self._http.stop()
            self._engine.dispose()

    def _check_sole_topic(self, projections: Sequence[Projection]) -> None:
        """Refuse (one line) a database that holds a group for another topic prefix.

        A database that does not answer in time (locked, hung) is waited for, as the
        groups wait for it; one without the table is an error.
        """
        delay = 0.5
        while True:
            try:
                with self._engine.connect() as connection:
                    for projection in projections:
                        topic = self._settings.topic(projection.topic)
                        OffsetStore(projection.group_id, topic).ensure_sole_topic(connection)
                return
            except OperationalError as exc:
                log.warning("database not answering; retrying", error=describe_db_error(exc))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except SQLAlchemyError as exc:
                raise ShopstreamError(
                    f"cannot read consumer_offsets: {describe_db_error(exc)} "
                    "(is the database migrated? 'shopstream db upgrade')"
                ) from None

    def _check_registry(self) -> None:
        """A misconfigured registry stops the daemon before it reads anything (a wrong
        URL would otherwise make every event look like an unknown schema); one that does
        not answer yet is an outage: the groups wait for it when they decode."""
        try:
            check_registry(self._settings)
        except ConnectionFailed as exc:
            log.warning("schema registry not answering; events wait for it", error=exc.message)

    def _check_topics_exist(self, projections: Sequence[Projection]) -> None:
        """``--until-caught-up`` on a topic that does not exist would wait forever."""
        topics = {self._settings.topic(p.topic) for p in projections}
        missing = sorted(topics - existing_topics(self._settings))
        if missing:
            raise UsageError(
                f"topic {', '.join(missing)} does not exist, nothing to catch up with; "
                "create it with 'shopstream topics create' (check SHOPSTREAM_TOPIC_PREFIX)"
            )

    def _work(self, worker: _Worker) -> None:
        try:
            worker.runner.run()
        except BaseException as exc:  # reported by the main thread, then the process stops
            worker.error = exc
            if not isinstance(exc, ShopstreamError):  # expected ones: the one error line
                log.error(
                    "group failed",
                    group=worker.runner.group_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
        finally:
            worker.runner.close()

    def _shutdown(self) -> int:
        self._stop.set()
        deadline = time.monotonic() + self._options.shutdown_timeout_s
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [w.runner.group_id for w in self._workers if w.thread.is_alive()]
        if stuck:
            log.error("groups did not stop in time", groups=stuck)
            return 1
        failed = [w for w in self._workers if w.error is not None]
        if failed:
            first = failed[0]
            raise GroupFailed(f"group {first.runner.group_id} stopped: {first.error}")
        log.info("daemon stopped")
        return 0

    def _start_http(self) -> None:
        if self._options.http_port is None:
            return
        self._http = HealthServer(
            self._metrics.registry,
            self._healthy,
            self._ready,
            self._options.http_port,
            host=self._options.http_host,
        )
        self._http.start()

    def _healthy(self) -> tuple[bool, str]:
        now = time.monotonic()
        stale = [
            w.runner.group_id
            for w in self._workers
            if now - w.runner.last_progress > self._runtime.stall_after_s or w.error is not None
        ]
        return (not stale, f"stalled: {', '.join(stale)}" if stale else "ok")

    def _ready(self) -> tuple[bool, str]:
        healthy, text = self._healthy()
        down = [w.runner.group_id for w in self._workers if not w.runner.db_ok]
        if not healthy:
            return False, text
        return (not down, f"database unavailable: {', '.join(down)}" if down else "ready")

    def _install_signals(self) -> dict[int, object]:
        previous: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", signal=signal.Signals(signum).name)
            self._stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handle)
        return previous

    def _restore_signals(self, previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
