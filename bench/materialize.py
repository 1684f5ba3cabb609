"""Materialization speed of the shipped ``order-state`` daemon, beside baselines from the same run.

What is measured is the code ``shopstream consume order-state --until-caught-up`` runs:
each member is that CLI command in its own process (through :mod:`bench.daemon_probe`,
which calls the CLI's entry function and adds a per-batch CPU clock), never a runner
assembled here. The events are the simulator's own order events, in two workloads:

- ``clustered``: few shoppers at once (``--clustered-customers``, 50: the simulator's
  default): an order is born and finished within a few hundred events, so most
  events of a batch touch rows created in that same batch;
- ``spread``: many shoppers at once (``--spread-customers``, 20,000): an order's
  events are far apart, so nearly every batch loads and updates rows written long
  before (a real shop).

For each workload and each run (``--runs``, the median and range are printed):

- a decode-only consumer (poll and decode, no database) with one process and with
  ``--members`` processes: the baselines;
- order-state into SQLite and into PostgreSQL (``--postgres-url`` or
  BENCH_POSTGRES_URL; skipped without) with one member and with ``--members``
  members (the steady rate while all of them consume);
- the peer (PostgreSQL only): the same job as an idiomatic Quix Streams application
  (:mod:`bench.quix_peer`), run with the interpreter in ``--peer-python`` (default
  ``.venv-quix/bin/python``, made by ``make bench-peer``); skipped with a note when
  it is not there.

It prints events/s, the ratios (to the decode-only baseline, to one member, to the
peer) and the CPU per event of each stage of one member: poll+decode, apply (the
projection's own work, loads included), database write+commit (the projection's
bulk writes, the event-id claim, the offsets compare-and-set, the commit), and the
process's other threads (librdkafka's). For scaling, it also prints the CPU per event
of all the members together and how busy the whole machine was meanwhile: members
that need no more CPU per event than one, on a machine with no idle core left, are
limited by the cores, not by the group.

Needs a running stack (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL). Everything it
writes lives under a unique topic prefix, group ids and databases, and all of it
(topics, subjects, databases) is deleted when the run ends.

    python bench/materialize.py [--orders 60000] [--runs 3] [--members 2]
                                [--postgres-url URL] [--workloads clustered,spread]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from producers.base import EventProducer
from schemas import ORDER_TOPIC
from shopstream.config import Settings
from shopstream.db.engine import create_postgres_database, drop_postgres_database, make_engine
from shopstream.db.migrate import upgrade
from shopstream.events import ORDER_EVENTS
from shopstream.kafka.clients import make_consumer
from shopstream.kafka.offsets import end_offsets
from shopstream.kafka.topics import create_topics, project_topics
from shopstream.logs import configure_logging
from shopstream.prefix import delete_prefixed_data
from shopstream.serde import EventDeserializer, make_registry_client
from shopstream.simulation.simulator import SimulationConfig, Simulator

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6
"""Partitions of the event topics (``shopstream topics create``'s default)."""
BATCH_SIZE = 5000
"""Messages per batch (the daemon's --batch-size)."""
SEED = 7
ORDER_TYPES = frozenset(cls.event_type for cls in ORDER_EVENTS)
STAGES = ("poll+decode", "apply", "db write+commit", "other threads", "total")

PEER_ROW = "Quix Streams peer -> PostgreSQL"

Commits = list[tuple[float, int]]
"""(wall-clock time of a batch's commit, events it applied), in commit order."""


# -- the workload ------------------------------------------------------------------


def produce_workload(settings: Settings, customers: int, orders: int) -> int:
    """The simulator's order events (``customers`` shoppers at once) sent with our
    producer to the prefixed order topic; returns how many."""
    config = SimulationConfig(customers=customers, orders=orders, seed=SEED)
    sent = 0
    with EventProducer(settings) as producer:
        for event in Simulator(config).events():
            if event.event_type in ORDER_TYPES:
                producer.send(event)
                sent += 1
        producer.close().raise_if_failed()
    return sent


# -- baselines: decode only ------------------------------------------------------------


def decode_only(settings: Settings, topic: str, members: int) -> tuple[float, float]:
    """Events/s of ``members`` decode-only processes sharing the topic's partitions
    (assigned outright, no group to join), started together, timed until the last
    one has decoded its share; and their CPU µs per event."""
    context = multiprocessing.get_context("spawn")
    results: Queue[tuple[int, float, float]] = context.Queue()
    go = context.Event()
    shares = [list(range(member, PARTITIONS, members)) for member in range(members)]
    processes = [
        context.Process(
            target=_decode_member,
            args=(settings.shopstream_topic_prefix, topic, share, results, go),
            daemon=True,
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    time.sleep(3.0)  # let every process import and connect before the clock starts
    started = time.time()
    go.set()
    finished = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    events = sum(count for count, _, _ in finished)
    cpu = sum(seconds for _, _, seconds in finished)
    return events / (max(at for _, at, _ in finished) - started), cpu / events * 1e6


def _decode_member(
    prefix: str,
    topic: str,
    partitions: list[int],
    results: Queue[tuple[int, float, float]],
    go: Event,
) -> None:
    """Decode ``partitions`` of ``topic`` to their end; report (events, finish time,
    CPU seconds of the process meanwhile)."""
    settings = Settings.load(shopstream_topic_prefix=prefix)
    ends = end_offsets(settings, [(topic, p) for p in partitions])
    consumer: Consumer = make_consumer(settings, f"bench-baseline-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    deserializer = EventDeserializer(make_registry_client(settings.registry_config()))
    remaining = sum(ends.values())
    count = 0
    go.wait(120)
    cpu = _process_cpu()
    while count < remaining:
        for message in consumer.consume(num_messages=BATCH_SIZE, timeout=0.2):
            if message.error() is None:
                deserializer.decode(message.value())
                count += 1
    finished, cpu = time.time(), _process_cpu() - cpu
    consumer.close()
    results.put((count, finished, cpu))


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, every core (Linux
    ``/proc/stat``; (0, 0) elsewhere): what the members, the broker, the registry,
    PostgreSQL and everything else running used, against what there was."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


# -- the shipped daemon ------------------------------------------------------------------


@dataclass
class DaemonRun:
    """One member's report (see :mod:`bench.daemon_probe`)."""

    commits: Commits
    cpu: dict[str, float]

    @property
    def applied(self) -> int:
        return sum(n for _, n in self.commits)

    def stage_us(self) -> dict[str, float]:
        """CPU µs per applied event of each stage (see the module's docstring)."""
        cpu = defaultdict(float, self.cpu)
        events = max(1, self.applied)
        write_commit = cpu["write"] + cpu["transaction"] - cpu["apply"]
        apply = cpu["apply"] - cpu["write"]
        poll_decode = cpu["run"] - cpu["transaction_on_run"]
        other = cpu["process"] - cpu["run"] - (cpu["transaction"] - cpu["transaction_on_run"])
        values = (poll_decode, apply, write_commit, other, cpu["process"])
        return {stage: value / events * 1e6 for stage, value in zip(STAGES, values, strict=True)}


def group_cpu_us(runs: Sequence[DaemonRun]) -> float:
    """CPU µs per applied event of all the members together (their processes' CPU)."""
    return (
        sum(run.cpu.get("process", 0.0) for run in runs)
        / max(1, sum(run.applied for run in runs))
        * 1e6
    )


@dataclass
class GroupRun:
    """The members' reports, and how busy the whole machine was while they ran."""

    members: list[DaemonRun]
    machine_busy: float
    """Share of all the machine's cores in use while the members committed batches
    (:meth:`MachineLoad.busy_while`)."""


class MachineLoad:
    """Samples :func:`machine_cpu` four times a second on a thread, to tell how busy the
    machine was in a window of wall-clock time."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MachineLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), *machine_cpu()))
            if self._stop.wait(0.25):
                return

    def busy_while(self, runs: Sequence[DaemonRun]) -> float:
        """Share of every core in use while all of ``runs`` committed batches: from the
        first commit of the last member to start to the last commit of the first one to
        finish (joining the group and exiting left out)."""
        committed = [run.commits for run in runs if run.commits]
        if not committed:
            return math.nan
        began = max(commits[0][0] for commits in committed)
        ended = min(commits[-1][0] for commits in committed)
        return self.busy_between(began, ended)

    def busy_between(self, began: float, ended: float) -> float:
        """Share of every core in use between the samples nearest ``began`` and ``ended``."""
        inside = [s for s in self.samples if began - 0.25 <= s[0] <= ended + 0.25]
        if ended <= began or len(inside) < 2 or inside[-1][2] <= inside[0][2]:
            return math.nan
        (_, busy_0, total_0), (_, busy_1, total_1) = inside[0], inside[-1]
        return (busy_1 - busy_0) / (total_1 - total_0)


def run_daemons(prefix: str, database_url: str, members: int, tmp: Path) -> list[DaemonRun]:
    """``members`` processes of ``shopstream consume order-state --until-caught-up``."""
    go = tmp / f"go-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENCH_PROBE_GO": str(go),
        "SHOPSTREAM_TOPIC_PREFIX": prefix,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    command = ["consume", "order-state", "--until-caught-up", "--batch-size", str(BATCH_SIZE)]
    command += ["--http-port", "-1"]
    outs = [tmp / f"member-{uuid.uuid4().hex[:8]}.json" for _ in range(members)]
    processes = []
    for out in outs:
        with out.with_suffix(".log").open("w") as log:  # the child keeps its own copy
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.daemon_probe", str(out), *command],
                    cwd=ROOT,
                    env=env,
                    stderr=log,
                )
            )
    try:
        deadline = time.monotonic() + 120
        while not all(out.with_suffix(".ready").exists() for out in outs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit("a consume process did not start")
            time.sleep(0.05)
        go.touch()
        runs = []
        for process, out in zip(processes, outs, strict=True):
            process.wait(timeout=900)
            if process.returncode != 0 or not out.exists():
                tail = out.with_suffix(".log").read_text().strip()[-2000:]
                raise SystemExit(f"consume exited {process.returncode}: {tail}")
            report = json.loads(out.read_text())
            runs.append(DaemonRun([(at, n) for at, n in report["commits"]], report["cpu"]))
        return runs
    finally:
        for process in processes:  # none is left behind when the run stops early
            if process.poll() is None:
                process.kill()
                process.wait()


def run_group(prefix: str, database_url: str, members: int, tmp: Path) -> GroupRun:
    """:func:`run_daemons`, and how busy the machine was while the members committed."""
    with MachineLoad() as load:
        runs = run_daemons(prefix, database_url, members, tmp)
    return GroupRun(runs, load.busy_while(runs))


def rate_one(run: DaemonRun) -> float:
    """Events/s from the first batch's commit to the last (joining not counted)."""
    commits = run.commits
    if len(commits) < 3:
        raise SystemExit("too few batches to time; produce more events (--orders)")
    return sum(n for _, n in commits[1:]) / (commits[-1][0] - commits[0][0])


def steady_rate(per_member: Sequence[Commits]) -> float | None:
    """Events/s committed while every member was consuming: from the moment the last
    member committed its first batch to the moment the first one committed its last.
    None when they overlapped for under a second (one joined too late: not counted)."""
    if any(len(commits) < 2 for commits in per_member):
        return None
    began = max(commits[0][0] for commits in per_member)
    ended = min(commits[-1][0] for commits in per_member)
    if ended - began < 1.0:
        return None
    counted = sum(n for commits in per_member for at, n in commits if began < at <= ended)
    return counted / (ended - began)


def migrate(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()


# -- the peer ------------------------------------------------------------------------------


def run_peer(
    python: Path, settings: Settings, topic: str, events: int, postgres: str, tmp: Path
) -> tuple[float, float]:
    """(events/s, CPU µs/event) of the Quix Streams job over ``topic`` into ``postgres``."""
    url = urlsplit(postgres.replace("+psycopg", ""))
    path = tmp / f"peer-{uuid.uuid4().hex[:8]}.json"
    config = {
        "bootstrap": settings.kafka_bootstrap_servers,
        "registry": settings.schema_registry_url,
        "topic": topic,
        "group": f"bench-quix-{uuid.uuid4().hex[:8]}",
        "host": url.hostname,
        "port": url.port or 5432,
        "dbname": url.path.lstrip("/"),
        "user": url.username,
        "password": url.password or "",
        "events": events,
    }
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [str(python), str(ROOT / "bench" / "quix_peer.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    result = json.loads(path.read_text())
    if done.returncode != 0 or not result.get("done"):
        raise SystemExit(f"the Quix peer failed: {done.stderr.strip()[-2000:]}")
    return events / result["seconds"], result["cpu"] / events * 1e6


# -- one workload, N runs ------------------------------------------------------------------


@dataclass
class Figures:
    """Every measurement of one workload, a list per row (one value per run)."""

    rates: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stages: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    groups: dict[str, list[GroupRun]] = field(default_factory=lambda: defaultdict(list))
    """The daemon runs by row, for the group's CPU per event and the machine's load."""
    events: int = 0


def measure(args: argparse.Namespace, customers: int, cleanup: ExitStack, tmp: Path) -> Figures:
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    settings = Settings.load(shopstream_topic_prefix=prefix)
    cleanup.callback(delete_prefixed_data, settings)
    create_topics(settings, project_topics(prefix=prefix))
    topic = settings.topic(ORDER_TOPIC)
    figures = Figures()
    figures.events = produce_workload(settings, customers, args.orders)
    print(f"  {figures.events:,} order events ({customers:,} customers at once)", flush=True)

    def fresh_sqlite() -> str:
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"

    def fresh_postgres() -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        cleanup.callback(drop_postgres_database, args.postgres_url, name)
        return create_postgres_database(args.postgres_url, name)

    databases: list[tuple[str, Callable[[], str]]] = [("SQLite", fresh_sqlite)]
    if args.postgres_url:
        databases.append(("PostgreSQL", fresh_postgres))
    members = args.members
    for run in range(args.runs):
        print(f"  run {run + 1}/{args.runs}", flush=True)
        rate, cpu = decode_only(settings, topic, 1)
        figures.rates["decode only, 1 process"].append(rate)
        figures.stages["decode only"].append({"total": cpu})
        if members > 1:
            figures.rates[f"decode only, {members} processes"].append(
                decode_only(settings, topic, members)[0]
            )
        for name, new_database in databases:
            url = new_database()
            migrate(url)
            single = run_group(prefix, url, 1, tmp)
            (one,) = single.members
            figures.rates[f"{name}, 1 member"].append(rate_one(one))
            figures.stages[name].append(one.stage_us())
            figures.groups[f"{name}, 1 member"].append(single)
            if members > 1:
                url = new_database()
                migrate(url)
                group = run_group(prefix, url, members, tmp)
                figures.groups[f"{name}, {members} members"].append(group)
                steady = steady_rate([member.commits for member in group.members])
                if steady is None:
                    print(f"    ({name}, {members} members: overlapped under 1 s, not counted)")
                row = f"{name}, {members} members"
                figures.rates[row].append(math.nan if steady is None else steady)
        if args.postgres_url and args.peer_python.exists():
            rate, cpu = run_peer(
                args.peer_python, settings, topic, figures.events, fresh_postgres(), tmp
            )
            figures.rates[PEER_ROW].append(rate)
            figures.stages["Quix Streams peer"].append({"total": cpu})
    return figures


# -- the report ------------------------------------------------------------------------------


def median_range(values: Sequence[float]) -> str:
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def ratio(values: Sequence[float], baseline: Sequence[float]) -> str:
    """Median of the per-run ratios (each run's figures come from the same minutes)."""
    pairs = [(v, b) for v, b in zip(values, baseline, strict=False) if not math.isnan(v + b)]
    if not pairs:
        return "-"
    return f"{statistics.median(v / b for v, b in pairs):.2f}"


def report(args: argparse.Namespace, workloads: dict[str, Figures]) -> None:
    members = args.members
    names = list(workloads)
    print(f"\nevents/s, median of {args.runs} run(s) (range); ratios: median of per-run ratios")
    print(f"{'':34s}" + "".join(f"{name:>34s}" for name in names))
    rows = sorted({row for figures in workloads.values() for row in figures.rates}, key=_row_order)
    for row in rows:
        cells = [median_range(workloads[name].rates.get(row, [])) for name in names]
        print(f"{row:34s}" + "".join(f"{cell:>34s}" for cell in cells))
    print("\nratios")
    checks: list[tuple[str, str, str]] = [
        (f"{db}, 1 member / decode only", f"{db}, 1 member", "decode only, 1 process")
        for db in ("SQLite", "PostgreSQL")
    ]
    if members > 1:
        checks += [
            (
                f"{db}, {members} members / 1 member",
                f"{db}, {members} members",
                f"{db}, 1 member",
            )
            for db in ("SQLite", "PostgreSQL")
        ]
    checks.append(
        (
            "PostgreSQL, 1 member / Quix peer",
            "PostgreSQL, 1 member",
            "Quix Streams peer -> PostgreSQL",
        )
    )
    for label, top, bottom in checks:
        cells = [
            ratio(workloads[n].rates.get(top, []), workloads[n].rates.get(bottom, []))
            for n in names
        ]
        print(f"{label:34s}" + "".join(f"{cell:>34s}" for cell in cells))
    print("\nCPU µs per event of one member (median of runs)")
    print(f"{'':34s}" + "".join(f"{s:>17s}" for s in STAGES))
    for name in names:
        for where, per_run in workloads[name].stages.items():
            cells = [
                f"{statistics.median(run[stage] for run in per_run):.1f}"
                if stage in per_run[0]
                else "-"
                for stage in STAGES
            ]
            text = "".join(f"{cell:>17s}" for cell in cells)
            print(f"{name + ', ' + where:34s}{text}")
    print(
        "\nscaling: CPU µs per event of all the members together, and how busy the whole"
        " machine (every core) was during the run (median of runs)"
    )
    for name in names:
        for row, runs in workloads[name].groups.items():
            cpu = statistics.median(group_cpu_us(group.members) for group in runs)
            busy = [group.machine_busy for group in runs if not math.isnan(group.machine_busy)]
            shown = f"{statistics.median(busy):.0%}" if busy else "-"
            print(f"{name + ', ' + row:34s}{cpu:17.1f} µs/event{shown:>17s} busy")
    print("\nCPU per event: decode only / one member (the ratio without the machine's load)")
    for where in ("SQLite", "PostgreSQL", "Quix Streams peer"):
        cells = [cpu_ratio(workloads[n].stages, where) for n in names]
        print(f"{where:34s}" + "".join(f"{cell:>34s}" for cell in cells))
    if not args.postgres_url:
        print("(PostgreSQL and the peer skipped: pass --postgres-url or BENCH_POSTGRES_URL)")
    elif not args.peer_python.exists():
        print(f"(Quix Streams peer skipped: {args.peer_python} not found; 'make bench-peer')")
    print(
        "(2 shared cores: absolute figures move with the machine's load; trust the "
        "ratios within one run)"
    )


def cpu_ratio(stages: dict[str, list[dict[str, float]]], where: str) -> str:
    """Median over runs of decode-only CPU per event / ``where``'s CPU per event."""
    pairs = zip(stages.get("decode only", []), stages.get(where, []), strict=False)
    ratios = [decode["total"] / member["total"] for decode, member in pairs]
    return f"{statistics.median(ratios):.2f}" if ratios else "-"


def _row_order(row: str) -> tuple[int, str]:
    order = ("decode only", "SQLite", "PostgreSQL", "Quix")
    return next((i for i, p in enumerate(order) if row.startswith(p)), len(order)), row


def main() -> None:
    parser = argparse.ArgumentParser(description="order-state daemon benchmark")
    parser.add_argument(
        "--orders",
        type=int,
        default=60_000,
        help="orders per workload (enough for two members to overlap for seconds)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", type=int, default=2, help="processes in the group")
    parser.add_argument("--clustered-customers", type=int, default=50)
    parser.add_argument("--spread-customers", type=int, default=20_000)
    parser.add_argument("--workloads", default="clustered,spread")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--peer-python", type=Path, default=ROOT / ".venv-quix" / "bin" / "python")
    args = parser.parse_args()
    configure_logging("WARNING")
    customers = {"clustered": args.clustered_customers, "spread": args.spread_customers}
    chosen = [name.strip() for name in args.workloads.split(",")]
    if unknown := set(chosen) - customers.keys():
        raise SystemExit(f"unknown workload(s): {', '.join(sorted(unknown))}")
    workloads: dict[str, Figures] = {}
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        for name in chosen:
            print(f"{name}:", flush=True)
            workloads[name] = measure(args, customers[name], cleanup, tmp)
    report(args, workloads)


if __name__ == "__main__":
    main()
