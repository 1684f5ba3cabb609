"""``shopstream demo``: the whole pipeline on the local default, end to end.

1. start the local stack (Kafka + Apicurio) unless it already runs;
2. migrate the demo database (SQLite by default), create the demo's topics and
   register the schemas;
3. start the three consumer groups as daemons (one ``shopstream consume`` process each);
4. simulate shoppers (with a small share of invalid events, and a few undecodable
   messages) and produce them, with a progress bar;
5. wait until every group has caught up;
6. print the read models and the dead letters by reason;
7. stop the daemons (SIGTERM), delete the demo's topics and subjects, and stop the
   stack parts it started — leaving the machine as it found it.

The demo runs on its own topics (``demo-<run id>-cart-events`` …) so it never mixes
with a pipeline you run by hand on the same stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from consumers.runtime.offset_store import OffsetStore
from producers.base import EventProducer, ProducerOptions
from schemas import ORDER_TOPIC, load_catalog
from shopstream.config import Settings
from shopstream.db.engine import make_engine
from shopstream.db.migrate import upgrade
from shopstream.errors import ShopstreamError
from shopstream.events import DomainEvent
from shopstream.groups import GROUP_SPECS, PROJECT_GROUPS
from shopstream.kafka.clients import make_producer
from shopstream.kafka.offsets import end_offsets
from shopstream.kafka.topics import DEFAULT_PARTITIONS, create_topics, project_topics
from shopstream.prefix import delete_prefixed_data
from shopstream.registry.admin import check_registry, register_all
from shopstream.serde import make_registry_client
from shopstream.simulation.simulator import SimulationConfig, Simulator
from shopstream.stack import LocalStack, StackConfig


@dataclass(frozen=True)
class DemoOptions:
    customers: int = 2500
    orders: int = 2000
    seed: int = 42
    invalid_rate: float = 0.02
    garbage: int = 3
    database_url: str = "sqlite:///shopstream-demo.db"
    keep_stack: bool = False
    keep_data: bool = False
    catch_up_timeout_s: float = 600.0


class DemoFailed(ShopstreamError):
    pass


@dataclass
class DemoRun:
    settings: Settings
    options: DemoOptions
    console: Console
    workdir: Path
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.endpoint_env(), "LOG_FORMAT": "json"}

    # -- daemons -----------------------------------------------------------------

    def start_daemons(self) -> None:
        for group in PROJECT_GROUPS:
            log = (self.workdir / f"{group}.log").open("ab")
            self.daemons[group] = subprocess.Popen(
                [sys.executable, "-m", "shopstream", "consume", group, "--http-port", "0"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
        self.console.print(
            f"started consumer daemons: {', '.join(PROJECT_GROUPS)} (logs in {self.workdir})"
        )

    def check_daemons(self) -> None:
        for group, process in self.daemons.items():
            code = process.poll()
            if code is not None:
                tail = (self.workdir / f"{group}.log").read_text(errors="replace")[-800:]
                raise DemoFailed(f"daemon {group} exited with {code}; last log: {tail!r}")

    def stop_daemons(self, timeout: float = 60.0) -> list[str]:
        problems = []
        for process in self.daemons.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for group, process in self.daemons.items():
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                code = -9
            if code != 0:
                problems.append(f"{group} exited {code}")
        self.daemons.clear()
        return problems

    # -- pipeline ---------------------------------------------------------------

    def produce(self, events: Sequence[DomainEvent]) -> float:
        options = ProducerOptions(topic_prefix=self.settings.shopstream_topic_prefix)
        started = time.perf_counter()
        with _progress(self.console) as progress:
            task = progress.add_task("producing simulated events", total=len(events))
            producer = EventProducer(self.settings, options)
            producer.start()
            for index, event in enumerate(events, start=1):
                producer.send(event)
                if index % 500 == 0:
                    progress.update(task, completed=index)
            report = producer.close()
            progress.update(task, completed=len(events))
        report.raise_if_failed()
        self._produce_garbage()
        return len(events) / (time.perf_counter() - started)

    def _produce_garbage(self) -> None:
        """A few messages that are not Avro at all, to show the dead-letter path."""
        if not self.options.garbage:
            return
        producer: Producer = make_producer(self.settings)
        for index in range(self.options.garbage):
            producer.produce(
                self.settings.topic(ORDER_TOPIC),
                key=f"junk-{index}".encode(),
                value=b"this is not an Avro event",
            )
        if producer.flush(30):
            raise DemoFailed("could not produce the undecodable demo messages")

    def wait_until_caught_up(self, engine: Engine) -> None:
        topics = {group: self.settings.topic(spec.topic) for group, spec in GROUP_SPECS.items()}
        ends = end_offsets(
            self.settings, [(t, p) for t in set(topics.values()) for p in range(DEFAULT_PARTITIONS)]
        )
        totals = {
            group: sum(v for (t, _), v in ends.items() if t == topic)
            for group, topic in topics.items()
        }
        deadline = time.monotonic() + self.options.catch_up_timeout_s
        with _progress(self.console) as progress:
            tasks = {
                group: progress.add_task(f"{group:17s} catching up", total=totals[group])
                for group in PROJECT_GROUPS
            }
            while True:
                self.check_daemons()
                done = _stored_offsets(engine, topics)
                for group, task in tasks.items():
                    progress.update(task, completed=done.get(group, 0))
                if all(done.get(group, 0) >= totals[group] for group in PROJECT_GROUPS):
                    return
                if time.monotonic() > deadline:
                    raise DemoFailed("the consumer groups did not catch up in time")
                time.sleep(0.5)

    def cleanup_data(self) -> None:
        """Delete the demo's topics and registry subjects."""
        delete_prefixed_data(self.settings)


def _stored_offsets(engine: Engine, topics: dict[str, str]) -> dict[str, int]:
    """Per group, the sum of the next offsets stored in the database for its topic."""
    with engine.connect() as connection:
        return {
            group: sum(OffsetStore(group, topic).load_all(connection).values())
            for group, topic in topics.items()
        }


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        yield progress


def _fresh_sqlite(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                Path(f"{parsed.database}{suffix}").unlink()


@contextmanager
def local_stack(settings: Settings, console: Console, keep: bool) -> Iterator[LocalStack]:
    """The local stack, started if needed; parts this started are stopped afterwards."""
    stack = LocalStack(
        StackConfig.from_settings(settings),
        progress=lambda message: console.print(f"[dim]… {message}[/dim]"),
    )
    before = {part.name for part in (stack.kafka, stack.registry) if part.is_running()}
    reports = stack.up()
    started = [r.status.name for r in reports if r.started]
    if started:
        console.print(f"local stack started: {', '.join(started)}")
    else:
        console.print("local stack already running: using it")
    try:
        yield stack
    finally:
        if not keep:
            for part in (stack.registry, stack.kafka):
                if part.name not in before:
                    part.stop()
            if len(before) < 2:
                console.print("stopped the stack parts the demo started")


def run_demo(
    settings: Settings,
    options: DemoOptions,
    console: Console,
    show_results: Callable[[Settings, Engine], None],
) -> None:
    run_id = uuid.uuid4().hex[:8]
    with local_stack(settings, console, options.keep_stack) as stack:
        endpoints = stack.endpoints
        demo_settings = Settings.load(
            kafka_bootstrap_servers=endpoints.bootstrap_servers,
            schema_registry_url=endpoints.registry_url,
            database_url=options.database_url,
            shopstream_topic_prefix=f"demo-{run_id}-",
            shopstream_cache_dir=settings.shopstream_cache_dir,
        )
        workdir = settings.shopstream_cache_dir / "demo" / run_id
        workdir.mkdir(parents=True, exist_ok=True)
        demo = DemoRun(demo_settings, options, console, workdir)
        _fresh_sqlite(options.database_url)
        engine = make_engine(options.database_url)
        try:
            upgrade(engine)
            create_topics(
                demo_settings, project_topics(prefix=demo_settings.shopstream_topic_prefix)
            )
            check_registry(demo_settings)
            register_all(
                make_registry_client(demo_settings.registry_config()),
                load_catalog().with_topic_prefix(demo_settings.shopstream_topic_prefix),
            )
            console.print(
                f"database {options.database_url} migrated; topics "
                f"{demo_settings.shopstream_topic_prefix}* created; schemas registered"
            )
            demo.start_daemons()
            config = SimulationConfig(
                customers=options.customers,
                orders=options.orders,
                seed=options.seed,
                invalid_rate=options.invalid_rate,
            )
            events = list(Simulator(config).events())
            rate = demo.produce(events)
            console.print(
                f"produced {len(events)} events (+{options.garbage} undecodable) "
                f"at {rate:,.0f} events/s"
            )
            demo.wait_until_caught_up(engine)
            problems = demo.stop_daemons()
            if problems:
                raise DemoFailed("daemons did not stop cleanly: " + "; ".join(problems))
            console.print("every group caught up; daemons stopped cleanly (SIGTERM)\n")
            show_results(demo_settings, engine)
        finally:
            demo.stop_daemons()
            engine.dispose()
            if not options.keep_data:
                demo.cleanup_data()
            else:
                console.print(
                    f"kept topics with prefix {demo_settings.shopstream_topic_prefix} "
                    "(SHOPSTREAM_TOPIC_PREFIX to inspect them)"
                )
