"""Consumer daemons as real processes, for tests that kill them.

A :class:`Daemon` runs ``python -m shopstream consume GROUP...`` in its own session
with stdout/stderr in a log file. ``kill9()`` sends SIGKILL (no chance to commit or
leave the group); ``terminate()`` sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


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
class Daemon:
    """One ``shopstream consume`` process."""

    groups: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    args: Sequence[str] = ("--batch-size", "500", "--batch-wait", "0.1")
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    starts: int = field(default=0, init=False)
    _log_start: int = field(default=0, init=False)

    def start(self) -> Daemon:
        if self.running:
            raise RuntimeError("daemon already running")
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()
        command = [
            sys.executable,
            "-m",
            "shopstream",
            "consume",
            *self.groups,
            "--http-port",
            "0",
            *self.args,
        ]
        self.process = subprocess.Popen(
            command,
            env=dict(self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("daemon not started")
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL, by pid, at whatever instant the process is in."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the daemon logged that it runs (its signal handlers are installed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            if "daemon running" in self.current_log():
                return
            time.sleep(0.1)

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM (once it runs) and wait; returns the exit code (raises if it does not stop)."""
        if self.process is None:
            return 0
        self.wait_ready()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"daemon {self.groups} ignored SIGTERM for {timeout}s") from None
        self._close_log()
        return code

    def wait(self, timeout: float) -> int:
        if self.process is None:
            raise RuntimeError("daemon not started")
        code = self.process.wait(timeout)
        self._close_log()
        return code

    def current_log(self) -> str:
        """What the latest start of the daemon logged."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode("utf-8", errors="replace")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def run_until_caught_up(
    groups: Sequence[str], env: Mapping[str, str], log_path: Path, timeout: float = 300.0
) -> None:
    """Run the groups with ``--until-caught-up`` and insist on exit code 0."""
    daemon = Daemon(groups, env, log_path, args=("--until-caught-up", "--batch-size", "2000"))
    daemon.start()
    try:
        code = daemon.wait(timeout)
    except subprocess.TimeoutExpired:
        daemon.kill9()
        raise AssertionError(
            f"{groups} not caught up in {timeout}s:\n{daemon.log_text()[-3000:]}"
        ) from None
    assert code == 0, f"{groups} exited {code}:\n{daemon.log_text()[-3000:]}"


def wait_for(predicate: object, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
