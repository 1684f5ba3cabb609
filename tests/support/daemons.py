"""Consumer daemons as real processes, for tests that kill them.

A :class:`Daemon` runs ``python -m shopstream consume GROUP...`` as a
:class:`~tests.support.processes.CliProcess`: ``kill9()`` gives it no chance to commit
or leave the group; ``terminate()`` sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import CliProcess


@dataclass
class Daemon(CliProcess):
    """One ``shopstream consume`` process."""

    groups: Sequence[str] = field(kw_only=True)
    args: Sequence[str] = ("--batch-size", "500", "--batch-wait", "0.1")

    @property
    def name(self) -> str:
        return f"daemon {list(self.groups)}"

    def start(self) -> Daemon:
        self.spawn(["consume", *self.groups, "--http-port", "0", *self.args])
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the daemon logged that it runs (its signal handlers are installed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            if "daemon running" in self.current_log():
                return
            time.sleep(0.1)

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM once it runs (before, the signal would kill it uncleanly), and wait."""
        if self.process is not None:
            self.wait_ready()
        return super().terminate(timeout)


def run_until_caught_up(
    groups: Sequence[str], env: Mapping[str, str], log_path: Path, timeout: float = 300.0
) -> None:
    """Run the groups with ``--until-caught-up`` and insist on exit code 0."""
    daemon = Daemon(
        env, log_path, groups=groups, args=("--until-caught-up", "--batch-size", "2000")
    )
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
