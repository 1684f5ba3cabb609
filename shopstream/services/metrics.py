"""Prometheus metrics of a service or relay process.

One process (``serve``, ``relay``): its own registry. ``serve --workers N``: the
workers are forked inside :func:`shared_across_workers`, which switches
prometheus_client to its multiprocess mode (each process writes its values to mmap'd
files in a temporary directory the parent owns and removes when the workers are gone),
so any worker's ``/metrics`` (:attr:`ServiceMetrics.exposed`) shows the sums over all
workers, whichever worker the kernel hands the scrape to.

A parent killed with ``kill -9`` cannot remove its directory, so the directory names
its owner: ``shopstream-metrics-<parent pid>-<random>`` in the system temporary
directory. Each ``serve --workers`` start removes the ones it finds there
(:func:`remove_abandoned`) whose owner pid no longer runs; never one whose pid runs
(a pid reused since only delays the removal), nor a symlink, nor anything else of
that name or not owned by this user. (Directories shared across pid namespaces are
outside this scheme.)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from shopstream.logs import get_logger

log = get_logger("shopstream.metrics")

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own switch: its values live in files in this directory."""
DIRECTORY_PREFIX = "shopstream-metrics-"
_OWNED_NAME = re.compile(re.escape(DIRECTORY_PREFIX) + r"([1-9][0-9]{0,6})-[a-z0-9_]+")
"""A directory :func:`shared_across_workers` made: the prefix, its owner's pid (at most
7 digits: Linux's pid_max is 2**22), then :func:`tempfile.mkdtemp`'s random part."""


@contextmanager
def shared_across_workers() -> Iterator[None]:
    """Metrics created by processes forked inside this block are summed across them
    (see the module docstring); the directory is removed on the way out."""
    root = Path(tempfile.gettempdir())
    remove_abandoned(root)
    directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-", dir=root)
    previous_class = values.ValueClass
    os.environ[MULTIPROCESS_DIR_ENV] = directory
    # prometheus_client picks its value class when first imported (from the variable
    # above); metrics made from now on use the mmap'd one.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        values.ValueClass = previous_class
        os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def remove_abandoned(root: Path) -> list[Path]:
    """Remove the metrics directories in ``root`` whose owner died without removing
    them (see the module docstring); returns them. Best effort: what cannot be read
    or removed is left."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        log.warning("cannot look for abandoned metrics directories", error=str(exc))
        return removed
    for entry in entries:
        owner = _OWNED_NAME.fullmatch(entry.name)
        try:
            if (
                owner is None
                or not entry.is_dir(follow_symlinks=False)
                or entry.stat(follow_symlinks=False).st_uid != os.geteuid()
                or _running(int(owner[1]))
            ):
                continue
        except OSError:  # removed meanwhile
            continue
        shutil.rmtree(entry.path, ignore_errors=True)  # refuses a symlink, follows none
        if os.path.lexists(entry.path):
            log.warning("abandoned metrics directory not removed", path=entry.path)
            continue
        log.info("abandoned metrics directory removed", path=entry.path)
        removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters keep counting in the sums)."""
    if MULTIPROCESS_DIR_ENV in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    exposed: CollectorRegistry = field(init=False)
    """What ``/metrics`` shows: :attr:`registry`, or in multiprocess mode every worker's."""

    def __post_init__(self) -> None:
        if MULTIPROCESS_DIR_ENV in os.environ:
            self.exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.exposed)  # type: ignore[no-untyped-call]
        else:
            self.exposed = self.registry
        r = self.registry
        self.requests = Counter(
            "shopstream_http_requests_total",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "shopstream_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.replays = Counter(
            "shopstream_idempotent_replays_total",
            "Requests answered with the stored response of their Idempotency-Key",
            registry=r,
        )
        self.published = Counter(
            "shopstream_outbox_published_total",
            "Outbox events acknowledged by Kafka and marked sent",
            ["event_type"],
            registry=r,
        )
        self.relay_lag = Histogram(
            "shopstream_outbox_relay_lag_seconds",
            "From the outbox row's commit to Kafka's acknowledgement",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.relay_failures = Counter(
            "shopstream_outbox_relay_failures_total",
            "Relay passes that failed (Kafka, registry or database) and were retried",
            registry=r,
        )
        self.pending = Gauge(
            "shopstream_outbox_pending",
            "Outbox rows read but not yet acknowledged in the relay's last pass",
            registry=r,
            multiprocess_mode="livesum",  # only the publishing relay's is not 0
        )
