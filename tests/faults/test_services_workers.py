"""``shopstream serve --workers 2`` (PostgreSQL) when its parent is killed with ``kill -9``.

The workers must not outlive it: each stops as on SIGTERM (uvicorn's graceful
shutdown, the lifespan logs ``stopped``) and the port is free again. The metrics
directory the killed parent could not remove is removed by the next ``serve
--workers`` start, while one whose owner still runs is kept. The services' temporary
directory is this test's own (``TMPDIR``), so nothing outside it is swept.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.config import Settings
from tests.conftest import StackEndpoints, fresh_postgres_database
from tests.support.pipeline import create_project_topics
from tests.support.processes import kill_session, session_pids
from tests.support.services import ServiceProcess, service_env

pytestmark = [pytest.mark.faults, pytest.mark.integration]

GONE_WITHIN_S = 20.0
"""Generous: an idle worker stops in well under a second."""


def _wait_for_log(service: ServiceProcess, needle: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (log := service.current_log()).count(needle) < count:
        assert time.monotonic() < deadline, f"{count}x {needle} not in {timeout}s:\n{log[-3000:]}"
        time.sleep(0.1)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


@contextlib.contextmanager
def _workers_env(
    stack: StackEndpoints, used_names: list[str], name: str, temp: Path
) -> Iterator[dict[str, str]]:
    """The environment of a ``serve --workers`` on a fresh database and fresh topics,
    its temporary directory ``temp`` (skips without PostgreSQL)."""
    if not stack.postgres_url:
        pytest.skip("--workers needs PostgreSQL (set TEST_POSTGRES_URL)")
    prefix = f"t-svc-{name}-{uuid.uuid4().hex[:8]}-"
    used_names.append(prefix)
    with fresh_postgres_database(stack.postgres_url) as url:
        settings = Settings.load(
            kafka_bootstrap_servers=stack.bootstrap_servers,
            schema_registry_url=stack.registry_url,
            database_url=url,
            shopstream_topic_prefix=prefix,
        )
        create_project_topics(settings, partitions=1)
        env = service_env(settings, TMPDIR=str(temp))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        yield env


def test_workers_die_with_their_killed_parent(
    stack: StackEndpoints, used_names: list[str], tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    kept = temp / f"shopstream-metrics-{os.getpid()}-livepid0"  # its owner (us) runs
    kept.mkdir()
    with _workers_env(stack, used_names, "orphans", temp) as env:
        first = ServiceProcess(env, tmp_path / "first.log", args=["--workers", "2"])
        second = ServiceProcess(
            env, tmp_path / "second.log", args=["--workers", "2"], port=first.port
        )
        sessions: list[int] = []
        try:
            first.start()
            sessions.append(first.pid)
            _wait_for_log(first, '"event": "serving"', 2, 60)
            workers = [pid for pid in session_pids(first.pid) if pid != first.pid]
            assert len(workers) == 2, workers

            first.kill9()
            deadline = time.monotonic() + GONE_WITHIN_S
            while (left := session_pids(first.pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not left, f"workers {left} outlived their parent by {GONE_WITHIN_S}s"
            assert first.current_log().count('"event": "stopped"') == 2, first.current_log()
            assert _port_free(first.port)
            abandoned = sorted(temp.glob(f"shopstream-metrics-{first.pid}-*"))
            assert len(abandoned) == 1, sorted(temp.iterdir())  # killed -9: not removed

            second.start()
            sessions.append(second.pid)
            _wait_for_log(second, '"event": "serving"', 2, 60)  # SIGTERM-ready, both
            assert not abandoned[0].exists(), "the dead parent's metrics directory is left"
            assert kept.is_dir(), "a live owner's metrics directory was removed"
            assert second.terminate() == 0, second.current_log()[-2000:]
            assert sorted(temp.iterdir()) == [kept]
        finally:
            for leader in sessions:
                kill_session(leader)
            first.kill9()
            second.kill9()


def test_a_sigterm_while_the_workers_start_is_a_clean_stop(
    stack: StackEndpoints, used_names: list[str], tmp_path: Path
) -> None:
    """SIGTERM as soon as both workers exist, before they serve (a worker that has not
    installed uvicorn's handler yet dies of the forwarded signal): exit 0, not
    "workers failed"."""
    with _workers_env(stack, used_names, "early", tmp_path) as env:
        service = ServiceProcess(env, tmp_path / "serve.log", args=["--workers", "2"])
        try:
            service.start(ready_timeout=0)
            deadline = time.monotonic() + 60
            while len(session_pids(service.pid)) < 3:  # the parent and both workers
                assert service.running, service.current_log()[-3000:]
                assert time.monotonic() < deadline, service.current_log()[-3000:]
                time.sleep(0.005)
            assert service.terminate() == 0, service.current_log()[-3000:]
            assert "workers failed" not in service.current_log()
        finally:
            kill_session(service.pid)
            service.kill9()
