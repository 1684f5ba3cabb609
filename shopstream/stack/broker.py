"""Apache Kafka as a single KRaft node (broker and controller in one JVM)."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from functools import cached_property
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from shopstream.errors import StackError
from shopstream.stack.config import KAFKA_VERSION
from shopstream.stack.fetch import ensure_kafka_libs, render_template
from shopstream.stack.java import JavaRuntime, find_java
from shopstream.stack.javapart import JavaPart
from shopstream.stack.process import port_accepts

KAFKA_MIN_JAVA = 17
HEAP = ("-Xms256m", "-Xmx512m")


def random_cluster_id() -> str:
    """A Kafka Uuid as ``StorageTool random-uuid`` prints it (URL-safe base64, no '-' first)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaPart(JavaPart):
    name = "kafka"
    title = f"Kafka {KAFKA_VERSION}"
    ready_timeout = 90.0

    def ports(self) -> dict[str, int]:
        return {"kafka": self.config.kafka_port, "controller": self.config.controller_port}

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.config.kafka_port}"

    @property
    def server_log(self) -> Path:
        return self.home / "server.log"

    @property
    def log_files(self) -> tuple[Path, ...]:
        return (self.server_log, self.console_log)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def answers(self, timeout: float = 3.0) -> bool:
        """A real metadata request through librdkafka."""
        if not port_accepts(self.config.kafka_port):
            return False
        admin = AdminClient({"bootstrap.servers": self.endpoint, "log_level": 0})
        try:
            admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def _classpath(self) -> str:
        return str(ensure_kafka_libs(self.config.cache_dir, self.progress) / "*")

    @cached_property
    def java(self) -> JavaRuntime:
        return find_java(KAFKA_MIN_JAVA, f"Kafka {KAFKA_VERSION}")

    def _jvm(self, main: str, *args: str) -> list[str]:
        return [
            str(self.java.path),
            *HEAP,
            self.marker,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        server = render_template(
            "server.properties",
            kafka_port=self.config.kafka_port,
            controller_port=self.config.controller_port,
            data_dir=self.data_dir,
        )
        (self.home / "server.properties").write_text(server, encoding="utf-8")
        log4j = render_template("log4j2.properties", log_file=self.server_log)
        (self.home / "log4j2.properties").write_text(log4j, encoding="utf-8")

    def _format_storage(self) -> None:
        """Format the log dir once (``--standalone`` makes this node the only voter)."""
        if (self.data_dir / "meta.properties").is_file():
            return
        argv = self._jvm(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--ignore-formatted",
            "-t",
            random_cluster_id(),
            "-c",
            str(self.home / "server.properties"),
        )
        self.progress(f"formatting Kafka storage in {self.data_dir}")
        log = self.home / "format.log"
        with log.open("wb") as out:
            result = subprocess.run(
                argv,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed (exit {result.returncode}); see {log}"
            )

    def _prepare(self) -> None:
        self.java  # noqa: B018  (fail fast, before any download, when Java is missing)
        self._write_config()
        self._format_storage()

    def _launch(self) -> None:
        argv = self._jvm("kafka.Kafka", str(self.home / "server.properties"))
        self._spawn_jvm(argv, cwd=self.home, env=os.environ)
