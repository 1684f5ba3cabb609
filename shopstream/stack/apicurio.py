"""Apicurio Registry with kafkasql storage: schemas live in Kafka and survive restarts."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import cached_property
from pathlib import Path

from shopstream.errors import StackError
from shopstream.stack.config import APICURIO_VERSION
from shopstream.stack.fetch import ensure_apicurio_app
from shopstream.stack.java import JavaRuntime, find_java
from shopstream.stack.javapart import JavaPart
from shopstream.stack.process import port_accepts

REGISTRY_MIN_JAVA = 21
CCOMPAT_PATH = "/apis/ccompat/v7"


def http_ok(url: str, timeout: float) -> bool:
    """True when a GET of ``url`` (always http://127.0.0.1 here) answers 200."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"only loopback URLs are probed, got {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


class RegistryPart(JavaPart):
    name = "registry"
    title = f"Apicurio Registry {APICURIO_VERSION}"
    ready_timeout = 240.0

    def ports(self) -> dict[str, int]:
        return {
            "registry": self.config.registry_port,
            "registry_management": self.config.registry_management_port,
        }

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.config.registry_port}{CCOMPAT_PATH}"

    @property
    def log_files(self) -> tuple[Path, ...]:
        return (self.console_log,)

    def answers(self, timeout: float = 3.0) -> bool:
        """Ready on the management port, then the ccompat API lists subjects."""
        health = f"http://127.0.0.1:{self.config.registry_management_port}/health/ready"
        return http_ok(health, timeout) and http_ok(f"{self.endpoint}/subjects", timeout)

    @cached_property
    def java(self) -> JavaRuntime:
        return find_java(REGISTRY_MIN_JAVA, f"Apicurio Registry {APICURIO_VERSION}")

    def _prepare(self) -> None:
        self.java  # noqa: B018  (fail fast, before any download, when Java is missing)
        ensure_apicurio_app(self.config.cache_dir, self.progress)
        if not port_accepts(self.config.kafka_port):
            raise StackError(
                f"{self.title} keeps its schemas in Kafka, which does not answer on "
                f"127.0.0.1:{self.config.kafka_port}; start Kafka first (shopstream stack up)"
            )

    def _launch(self) -> None:
        app = ensure_apicurio_app(self.config.cache_dir, self.progress)
        argv = [
            str(self.java.path),
            "-Xmx512m",
            self.marker,
            f"-Dquarkus.http.port={self.config.registry_port}",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.management.port={self.config.registry_management_port}",
            "-Dquarkus.management.host=127.0.0.1",
            "-jar",
            "quarkus-run.jar",
        ]
        env = dict(os.environ)
        env["APICURIO_STORAGE_KIND"] = "kafkasql"
        env["APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{self.config.kafka_port}"
        self._spawn_jvm(argv, cwd=app, env=env)
