"""What every part of the local stack (Kafka, the registry, PostgreSQL) can do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from shopstream.errors import StackError
from shopstream.stack.config import StackConfig
from shopstream.stack.process import port_is_free, wait_until

Progress = Callable[[str], None]

PORT_FLAGS = {
    "kafka": "--kafka-port",
    "controller": "--controller-port",
    "secure": "--secure-port",
    "registry": "--registry-port",
    "registry_management": "--registry-management-port",
    "postgres": "--postgres-port",
}


def quiet(_: str) -> None:
    """A progress sink that drops every message."""


@dataclass(frozen=True)
class PartStatus:
    """One line of ``shopstream stack status``."""

    name: str
    title: str
    running: bool
    pid: int | None
    ports: dict[str, int]
    answers: bool
    endpoint: str
    logs: tuple[Path, ...]


class Part(ABC):
    """One process of the stack, with an explicit start/stop life cycle."""

    name: str
    title: str
    ready_timeout: ClassVar[float] = 120.0
    stop_timeout: ClassVar[float] = 30.0

    def __init__(self, config: StackConfig, progress: Progress = quiet) -> None:
        self.config = config
        self.progress = progress

    @property
    def home(self) -> Path:
        """This part's folder in the state dir (config, data, logs, pid file)."""
        return self.config.state_dir.absolute() / self.name

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """The ports this part listens on, by name (keys of PORT_FLAGS)."""

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """What a client connects to."""

    @property
    @abstractmethod
    def log_files(self) -> tuple[Path, ...]:
        """Where this part writes its logs."""

    @abstractmethod
    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file counts as None)."""

    @abstractmethod
    def answers(self, timeout: float = 3.0) -> bool:
        """True when the part answers a real request right now."""

    @abstractmethod
    def _prepare(self) -> None:
        """Fetch, configure and format whatever the process needs before it starts."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the process, detached, and record its pid."""

    @abstractmethod
    def stop(self) -> bool:
        """Stop our process if it runs; True when there was one to stop."""

    # -- shared behaviour -----------------------------------------------------

    def is_running(self) -> bool:
        return self.pid() is not None

    def _alive(self) -> bool:
        """While waiting for start-up: does the process still run?"""
        return self.is_running()

    def start(self) -> bool:
        """Start the part and wait until it answers; False if it already ran."""
        if self.is_running():
            self.wait_ready()
            return False
        self.check_ports_free()
        self.prepare_and_launch()
        self.wait_ready()
        return True

    def prepare_and_launch(self) -> None:
        """Prepare and start the process without waiting for it to answer."""
        self._prepare()
        self.progress(f"starting {self.title}")
        self._launch()

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait_ready(self) -> float:
        """Poll until the part answers; a one-line StackError if it dies or times out."""
        return wait_until(
            self.answers,
            timeout=self.ready_timeout,
            what=self.title,
            alive=self._alive,
            hint=f"see {self.log_files[0]}",
        )

    def check_ports_free(self) -> None:
        for label, port in self.ports().items():
            if not port_is_free(port):
                raise StackError(
                    f"port {port} ({self.title} {label.replace('_', ' ')} port) is already in "
                    f"use by another process; stop that process or pick another port "
                    f"(shopstream stack up {PORT_FLAGS[label]} N)"
                )

    def status(self) -> PartStatus:
        pid = self.pid()
        return PartStatus(
            name=self.name,
            title=self.title,
            running=pid is not None,
            pid=pid,
            ports=self.ports(),
            answers=pid is not None and self.answers(),
            endpoint=self.endpoint,
            logs=self.log_files,
        )
