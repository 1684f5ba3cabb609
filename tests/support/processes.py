"""A shopstream command as a real process, for tests that kill it or stop it.

:class:`CliProcess` runs ``python -m shopstream ARGS`` in its own session with stdout
and stderr in a log file (appended across restarts). ``kill9()`` sends SIGKILL, by
pid, at whatever instant the process is in; ``terminate()`` sends SIGTERM and waits
for a clean exit. The daemons (:mod:`tests.support.daemons`) and the services
(:mod:`tests.support.services`) are the two kinds. A process that forks (``serve
--workers``) keeps its children in its session: :func:`session_pids` finds them (also
once they are orphans) and :func:`kill_session` kills them, by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def session_pids(leader: int) -> list[int]:
    """The live (not zombie) processes in the session ``leader`` started, ``leader``
    included while it lives: its children stay in it when it dies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:  # gone meanwhile
            continue
        state, _ppid, _pgrp, session = stat.rpartition(")")[2].split()[:4]
        if int(session) == leader and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def kill_session(leader: int) -> None:
    """SIGKILL every live process of the session ``leader`` started, by pid."""
    for pid in session_pids(leader):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cli_env(
    settings_env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a shopstream subprocess: ours, then the stack's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(settings_env)
    env.setdefault("LOG_FORMAT", "json")
    env.update(extra or {})
    return env


@dataclass
class CliProcess:
    """One ``shopstream`` command in its own process."""

    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _log_start: int = field(default=0, init=False, repr=False)

    @property
    def name(self) -> str:
        return "shopstream"

    def spawn(self, arguments: Sequence[str]) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} already running")
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopstream", *arguments],
            env=dict(self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} not started")
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL, by pid, at whatever instant the process is in."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait; returns the exit code (kills and fails if it hangs)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s") from None
        self._close_log()
        return code

    def wait(self, timeout: float) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} not started")
        code = self.process.wait(timeout)
        self._close_log()
        return code

    def current_log(self) -> str:
        """What the latest start logged."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode("utf-8", errors="replace")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
