"""A stack part that is one JVM we start ourselves and track by its pid file."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from shopstream.stack.base import Part
from shopstream.stack.process import is_ours, kill_now, read_pid, spawn, terminate, wait_gone


class JavaPart(Part):
    """Pid file, command-line marker, detached start and SIGTERM/SIGKILL stop."""

    _child: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the JVM."""
        return self.home / f"{self.name}.out"

    @property
    def marker(self) -> str:
        """A JVM argument that only this part of this stack has on its command line."""
        return f"-Dshopstream.stack.home={self.home}"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and is_ours(pid, self.marker) else None

    def _alive(self) -> bool:
        """Our own child is asked directly (no /proc race right after exec)."""
        if self._child is not None:
            return self._child.poll() is None
        return self.is_running()

    def _spawn_jvm(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        child = spawn(argv, cwd=cwd, log_file=self.console_log, env=env)
        self._child = child
        self.pid_file.write_text(f"{child.pid}\n", encoding="utf-8")

    def stop(self) -> bool:
        pid = self.pid()
        stopped = False
        if pid is not None:
            self.progress(f"stopping {self.title} (pid {pid})")
            stopped = terminate(pid, self.marker, self.stop_timeout)
        self._reap_child()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return stopped

    def _reap_child(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def kill(self) -> int | None:
        """``kill -9`` our process (fault tests) and wait until it is gone; its pid."""
        pid = self.pid()
        if pid is None or not kill_now(pid, self.marker):
            return None
        self.progress(f"killed {self.title} (pid {pid}) with SIGKILL")
        self._reap_child()
        wait_gone(pid, self.marker, 10.0)
        return pid
