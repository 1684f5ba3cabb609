"""Process plumbing for the local stack: pid files, ownership checks, ports, polling.

Every process the stack starts carries a *marker* on its command line (an absolute
path inside the stack's state dir). A pid read from a pid file is only ever
signalled after ``/proc/<pid>/cmdline`` shows that marker, so a stale pid file can
never make us signal somebody else's process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from shopstream.errors import StackError

POLL_INTERVAL = 0.25


def read_pid(pid_file: Path) -> int | None:
    """The pid on the first line of ``pid_file``, or None when absent or garbled."""
    try:
        first = pid_file.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.decode("utf-8", "replace").rstrip("\0").split("\0")


def is_ours(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive and one of its arguments is exactly ``marker``."""
    argv = process_cmdline(pid)
    return argv is not None and marker in argv


def find_marked_pids(marker: str) -> list[int]:
    """Every live process whose command line carries ``marker`` (for checks and tests)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_ours(int(entry.name), marker):
            found.append(int(entry.name))
    return sorted(found)


def spawn(
    argv: Sequence[str], *, cwd: Path, log_file: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached in its own session, stdout and stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _reap(pid: int) -> None:
    """Collect the exit status of our own child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, marker: str, timeout: float) -> bool:
    """Poll until ``pid`` no longer runs our command line; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not is_ours(pid, marker):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def terminate(pid: int, marker: str, timeout: float) -> bool:
    """SIGTERM ``pid`` if it is ours, SIGKILL after ``timeout`` s; True if we signalled it."""
    if not is_ours(pid, marker):
        return False
    _signal(pid, signal.SIGTERM)
    if not wait_gone(pid, marker, timeout) and is_ours(pid, marker):
        _signal(pid, signal.SIGKILL)
        if not wait_gone(pid, marker, 10.0):
            raise StackError(f"process {pid} did not exit after SIGKILL")
    return True


def kill_now(pid: int, marker: str) -> bool:
    """SIGKILL ``pid`` if it is ours, without waiting (fault tests); True if signalled."""
    if not is_ours(pid, marker):
        return False
    _signal(pid, signal.SIGKILL)
    return True


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that are free right now (for isolated test stacks)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    hint: str = "",
) -> float:
    """Poll ``check`` until it is true; return the seconds waited.

    Raises :class:`StackError` when ``timeout`` passes, or at once when ``alive``
    says the process we wait for has exited.
    """
    start = time.monotonic()
    deadline = start + timeout
    suffix = f"; {hint}" if hint else ""
    while True:
        if check():
            return time.monotonic() - start
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up{suffix}")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not answer within {timeout:.0f} s{suffix}")
        time.sleep(POLL_INTERVAL)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
