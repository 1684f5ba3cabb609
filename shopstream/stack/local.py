"""The local stack as a whole: Kafka, then the registry, and PostgreSQL on request."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from shopstream.errors import StackError
from shopstream.stack.apicurio import RegistryPart
from shopstream.stack.base import Part, PartStatus, Progress, quiet
from shopstream.stack.broker import KafkaPart
from shopstream.stack.config import StackConfig
from shopstream.stack.postgres import PostgresPart
from shopstream.stack.process import file_lock, find_marked_pids


@dataclass(frozen=True)
class StackEndpoints:
    """Where clients reach a running stack."""

    bootstrap_servers: str
    registry_url: str
    database_url: str | None = None

    def env(self) -> dict[str, str]:
        """The environment variables that point shopstream at this stack."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.registry_url,
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env


@dataclass(frozen=True)
class PartReport:
    """What ``up`` did to one part."""

    status: PartStatus
    started: bool
    seconds: float


class LocalStack:
    """Real processes started (and stopped) by the project itself.

    ``up()`` is idempotent; ``down()`` stops only processes whose pid files and
    command lines say they belong to this stack's state dir.
    """

    def __init__(self, config: StackConfig, progress: Progress = quiet) -> None:
        self.config = config
        self.kafka = KafkaPart(config, progress)
        self.registry = RegistryPart(config, progress)
        self.postgres = PostgresPart(config, progress)

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self.kafka, self.registry, self.postgres)

    @property
    def endpoints(self) -> StackEndpoints:
        with_db = self.config.with_postgres or self.postgres.is_running()
        return StackEndpoints(
            bootstrap_servers=self.kafka.endpoint,
            registry_url=self.registry.endpoint,
            database_url=self.postgres.endpoint if with_db else None,
        )

    def _check_same_ports(self) -> None:
        saved = StackConfig.load_saved(self.config.cache_dir, self.config.state_dir)
        if saved is None or saved.same_ports(self.config):
            return
        running = [part.title for part in LocalStack(saved).parts if part.is_running()]
        if running:
            raise StackError(
                f"the stack in {self.config.state_dir} already runs ({', '.join(running)}) "
                f"on other ports {saved.ports()}; run 'shopstream stack down' first"
            )

    def up(self) -> list[PartReport]:
        """Start every part not running yet and wait until each answers."""
        wanted: list[Part] = [self.kafka, self.registry]
        if self.config.with_postgres:
            wanted.append(self.postgres)
        reports = []
        with file_lock(self.config.state_dir / ".lock"):
            self._check_same_ports()
            self.config.save()
            for part in wanted:
                began = time.monotonic()
                started = part.start()
                reports.append(PartReport(part.status(), started, time.monotonic() - began))
        return reports

    def down(self) -> list[PartStatus]:
        """Stop every part that runs (registry first); the statuses of those stopped."""
        stopped: list[PartStatus] = []
        if not self.config.state_dir.is_dir():
            return stopped
        with file_lock(self.config.state_dir / ".lock"):
            for part in (self.registry, self.kafka, self.postgres):
                before = part.status()
                if part.stop():
                    stopped.append(before)
        return stopped

    def status(self) -> list[PartStatus]:
        return [part.status() for part in self.parts]

    def leftover_pids(self) -> list[int]:
        """Processes of this stack still alive (empty after a clean ``down``)."""
        markers = [self.kafka.marker, self.registry.marker, str(self.postgres.data_dir)]
        return sorted({pid for marker in markers for pid in find_marked_pids(marker)})

    def purge(self) -> None:
        """Stop everything, then delete the state dir (data, logs); the cache stays."""
        self.down()
        self.postgres.purge()
        shutil.rmtree(self.config.state_dir, ignore_errors=True)
