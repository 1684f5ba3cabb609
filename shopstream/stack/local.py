"""The local stack as a whole: Kafka, then the registry, and PostgreSQL on request."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from shopstream.errors import StackError
from shopstream.stack.apicurio import RegistryPart
from shopstream.stack.base import Part, PartStatus, Progress, quiet
from shopstream.stack.broker import KafkaPart, secure_files
from shopstream.stack.config import StackConfig
from shopstream.stack.postgres import PostgresPart
from shopstream.stack.process import file_lock, find_marked_pids
from shopstream.stack.users import ensure_scram_user


@dataclass(frozen=True)
class StackEndpoints:
    """Where clients reach a running stack."""

    bootstrap_servers: str
    registry_url: str
    database_url: str | None = None
    secure: dict[str, str] | None = None
    """With ``--secure``: the SASL_SSL client settings (no password) replacing the
    plaintext bootstrap servers."""
    secrets_file: Path | None = None
    """With ``--secure``: every client setting, the password included (mode 0600)."""

    def env(self) -> dict[str, str]:
        """The environment variables that point shopstream at this stack (no secret)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
        env.update(self.secure or {})
        env["SCHEMA_REGISTRY_URL"] = self.registry_url
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
        self.brokers = tuple(KafkaPart(config, progress, node) for node in config.nodes())
        self.kafka = self.brokers[0]
        self.registry = RegistryPart(config, progress)
        self.postgres = PostgresPart(config, progress)

    @property
    def parts(self) -> tuple[Part, ...]:
        return (*self.brokers, self.registry, self.postgres)

    def broker(self, node_id: int) -> KafkaPart:
        return self.brokers[node_id - 1]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's plaintext loopback listener."""
        return ",".join(part.endpoint for part in self.brokers)

    @property
    def secure_bootstrap_servers(self) -> str:
        return ",".join(part.secure_endpoint for part in self.brokers)

    @property
    def endpoints(self) -> StackEndpoints:
        with_db = self.config.with_postgres or self.postgres.is_running()
        secure: dict[str, str] | None = None
        secrets_file: Path | None = None
        if self.config.secure:
            files = secure_files(self.config)
            secure = files.client_settings(self.secure_bootstrap_servers)
            secrets_file = files.client_env
        return StackEndpoints(
            bootstrap_servers=self.bootstrap_servers,
            registry_url=self.registry.endpoint,
            database_url=self.postgres.endpoint if with_db else None,
            secure=secure,
            secrets_file=secrets_file,
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
        if saved.shape() != self.config.shape() and self.kafka.data_dir.is_dir():
            raise StackError(
                f"the stack in {self.config.state_dir} was created with {saved.brokers} "
                f"Kafka node(s){' and --secure' if saved.secure else ''}; its data cannot "
                "change shape: run 'shopstream stack down --purge' first, or use another "
                "--state-dir"
            )

    def up(self) -> list[PartReport]:
        """Start every part not running yet and wait until each answers."""
        reports = []
        with file_lock(self.config.state_dir / ".lock"):
            self._check_same_ports()
            self.config.save()
            reports.extend(self._start_brokers())
            if self.config.secure:
                files = secure_files(self.config)
                ensure_scram_user(self.bootstrap_servers, files.password())
                files.write_client_env(files.client_settings(self.secure_bootstrap_servers))
            wanted: list[Part] = [self.registry]
            if self.config.with_postgres:
                wanted.append(self.postgres)
            for part in wanted:
                began = time.monotonic()
                started = part.start()
                reports.append(PartReport(part.status(), started, time.monotonic() - began))
        return reports

    def _start_brokers(self) -> list[PartReport]:
        """Launch every node, then wait for all: a cluster's nodes only answer once a
        quorum of controllers runs, so waiting for each in turn would never end."""
        began = time.monotonic()
        launched = []
        for part in self.brokers:
            if part.is_running():
                launched.append(False)
                continue
            part.check_ports_free()
            part.prepare_and_launch()
            launched.append(True)
        for part in self.brokers:
            part.wait_ready()
        seconds = time.monotonic() - began
        return [
            PartReport(part.status(), started, seconds)
            for part, started in zip(self.brokers, launched, strict=True)
        ]

    def down(self) -> list[PartStatus]:
        """Stop every part that runs (registry first); the statuses of those stopped."""
        stopped: list[PartStatus] = []
        if not self.config.state_dir.is_dir():
            return stopped
        with file_lock(self.config.state_dir / ".lock"):
            for part in (self.registry, *self.brokers, self.postgres):
                before = part.status()
                if part.stop():
                    stopped.append(before)
        return stopped

    def status(self) -> list[PartStatus]:
        return [part.status() for part in self.parts]

    def leftover_pids(self) -> list[int]:
        """Processes of this stack still alive (empty after a clean ``down``)."""
        markers = [part.marker for part in self.brokers]
        markers += [self.registry.marker, str(self.postgres.data_dir)]
        return sorted({pid for marker in markers for pid in find_marked_pids(marker)})

    def purge(self) -> None:
        """Stop everything, then delete the state dir (data, logs); the cache stays."""
        self.down()
        self.postgres.purge()
        shutil.rmtree(self.config.state_dir, ignore_errors=True)
