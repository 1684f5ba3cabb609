"""Run ``shopstream consume ...`` exactly as the CLI does, and report where its CPU went.

    python -m bench.daemon_probe OUT.json consume order-state --until-caught-up ...

Calls the CLI's own entry function (:func:`shopstream.cli.app.main`) with the
arguments after ``OUT.json``. Before that it wraps a few of the runtime's methods with
a per-batch thread-CPU clock (``time.thread_time``, two calls per batch and stage, so
the probe itself costs well under 0.1 µs per event) and adds a commit listener. When
the daemon exits, it writes one JSON object to ``OUT.json``:

- ``commits``: [wall-clock time of each batch commit, events applied], in order;
- ``cpu``: CPU seconds by stage, summed over the run — ``run`` (the group's polling
  thread, whole loop), ``decode``, ``transaction`` (a batch's whole transaction, on
  the writer thread or the polling thread), ``apply`` (the projection, inside the
  transaction), ``write`` (the projection's bulk inserts/updates, inside ``apply``),
  ``process`` (every thread of the process, librdkafka's included, from the group's
  start to its end); and ``<stage>_on_run``: the part of a stage spent on the
  polling thread (all of it on SQLite, where the transaction runs there);
- ``exit_code``.

With BENCH_PROBE_GO set, the daemon creates ``OUT.ready`` once subscribed and starts
polling only when the file named by BENCH_PROBE_GO exists, so that the members of a
group start together.

It is a benchmark's instrument, not part of the product: it only reads names the
runtime already has (the runner's decode and transaction methods, the projection's
apply, the bulk helpers it calls).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

CPU: dict[str, float] = {}
COMMITS: list[tuple[float, int]] = []
RUN_THREADS: set[int] = set()
"""The threads running a group's loop (the polling threads)."""
_lock = threading.Lock()


def _add(stage: str, seconds: float) -> None:
    with _lock:
        CPU[stage] = CPU.get(stage, 0.0) + seconds


def _timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.thread_time() - started
            _add(stage, spent)
            if threading.get_ident() in RUN_THREADS:
                _add(f"{stage}_on_run", spent)

    return timed


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def install(ready: Path | None = None, go: Path | None = None) -> None:
    """Wrap the runtime's stages (see the module's docstring); with ``ready`` and
    ``go``: once subscribed, create ``ready`` and wait for ``go`` to exist."""
    from consumers.projections import order_state
    from consumers.runtime.runner import GroupRunner

    for owner, name, stage in (
        (GroupRunner, "_decode", "decode"),
        (GroupRunner, "_apply_in_transaction", "transaction"),
        (order_state.OrderStateProjection, "apply", "apply"),
        (order_state, "insert_rows", "write"),
        (order_state, "update_rows", "write"),
    ):
        setattr(owner, name, _timed(stage, getattr(owner, name)))

    original_start = GroupRunner.start
    original_run = GroupRunner.run

    def start(self: Any) -> None:
        self.add_commit_listener(lambda applied, at: COMMITS.append((at, len(applied))))
        original_start(self)
        if ready is not None:
            ready.touch()

    def run(self: Any) -> None:
        while go is not None and not go.exists():  # the members start polling together
            time.sleep(0.01)
        RUN_THREADS.add(threading.get_ident())
        process, thread = _process_cpu(), time.thread_time()
        try:
            original_run(self)
        finally:
            _add("run", time.thread_time() - thread)
            _add("process", _process_cpu() - process)

    setattr(GroupRunner, "start", start)  # noqa: B010 (mypy: no assigning to a method)
    setattr(GroupRunner, "run", run)  # noqa: B010


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    go = os.environ.get("BENCH_PROBE_GO")
    if go:
        install(out.with_suffix(".ready"), Path(go))
    else:
        install()
    from shopstream.cli.app import main as cli_main

    code: int | str | None = 0
    try:
        cli_main(argv)
    except SystemExit as exc:
        code = exc.code
    out.write_text(json.dumps({"commits": COMMITS, "cpu": CPU, "exit_code": code}))
    sys.exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
