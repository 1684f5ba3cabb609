"""Apache Kafka as KRaft nodes, each broker and controller in one JVM.

One node (the default) forms a dynamic quorum of itself (``--standalone``). A
cluster (``--brokers 3``) has a static quorum of every node
(``controller.quorum.voters``), the same cluster id on every node, and replication
factor min(3, nodes) with ``min.insync.replicas=2`` for new and internal topics.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from functools import cached_property
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from shopstream.errors import StackError
from shopstream.stack.base import Progress, quiet
from shopstream.stack.config import KAFKA_VERSION, NodePorts, StackConfig
from shopstream.stack.fetch import ensure_kafka_libs, render_template
from shopstream.stack.java import JavaRuntime, find_java
from shopstream.stack.javapart import JavaPart
from shopstream.stack.process import port_accepts
from shopstream.stack.security import SECURITY_PROTOCOL, SecureFiles

KAFKA_MIN_JAVA = 17
HEAP = ("-Xms256m", "-Xmx512m")
CLUSTER_ID_FILE = "kafka-cluster-id"
QUORUM_STATE = Path("__cluster_metadata-0") / "quorum-state"


def random_cluster_id() -> str:
    """A Kafka Uuid as ``StorageTool random-uuid`` prints it (URL-safe base64, no '-' first)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def secure_files(config: StackConfig) -> SecureFiles:
    return SecureFiles(config.state_dir.absolute() / "secure")


class KafkaPart(JavaPart):
    """One KRaft node: node 1 lives in ``<state>/kafka``, node n in ``<state>/kafka-n``."""

    ready_timeout = 90.0

    def __init__(
        self, config: StackConfig, progress: Progress = quiet, node: NodePorts | None = None
    ) -> None:
        super().__init__(config, progress)
        self.node = node or config.nodes()[0]
        single = config.brokers == 1
        self.name = "kafka" if self.node.node_id == 1 else f"kafka-{self.node.node_id}"
        self.title = f"Kafka {KAFKA_VERSION}" + ("" if single else f" node {self.node.node_id}")

    def ports(self) -> dict[str, int]:
        ports = {"kafka": self.node.kafka, "controller": self.node.controller}
        if self.config.secure:
            ports["secure"] = self.node.secure
        return ports

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.node.kafka}"

    @property
    def secure_endpoint(self) -> str:
        return f"127.0.0.1:{self.node.secure}"

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
        """A real metadata request through librdkafka, to this node alone."""
        if not port_accepts(self.node.kafka):
            return False
        admin = AdminClient({"bootstrap.servers": self.endpoint, "log_level": 0})
        try:
            admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def quorum_state(self) -> tuple[int, int] | None:
        """(leader id, leader epoch) as this node last recorded them, or None."""
        try:
            state = json.loads((self.data_dir / QUORUM_STATE).read_text(encoding="utf-8"))
            return int(state["leaderId"]), int(state["leaderEpoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

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
        listeners = [
            f"PLAINTEXT://{self.endpoint}",
            f"CONTROLLER://127.0.0.1:{self.node.controller}",
        ]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        security = ""
        if self.config.secure:
            listeners.append(f"{SECURITY_PROTOCOL}://{self.secure_endpoint}")
            protocols.append(f"{SECURITY_PROTOCOL}:{SECURITY_PROTOCOL}")
            security = render_template(
                "secure-listener.properties", **secure_files(self.config).listener_properties()
            )
        server = render_template(
            "server.properties",
            node_id=self.node.node_id,
            quorum=self._quorum_line(),
            listeners=",".join(listeners),
            protocol_map=",".join(protocols),
            data_dir=self.data_dir,
            replication=self.config.replication_factor,
            min_isr=self.config.min_insync_replicas,
            security=security,
        )
        server_properties = self.home / "server.properties"
        server_properties.write_text(server, encoding="utf-8")
        server_properties.chmod(0o600)  # holds the listener's private key with --secure
        log4j = render_template("log4j2.properties", log_file=self.server_log)
        (self.home / "log4j2.properties").write_text(log4j, encoding="utf-8")

    def _quorum_line(self) -> str:
        """One node: a dynamic quorum of itself; a cluster: every node a static voter."""
        if self.config.brokers == 1:
            return f"controller.quorum.bootstrap.servers=127.0.0.1:{self.node.controller}"
        voters = ",".join(
            f"{node.node_id}@127.0.0.1:{node.controller}" for node in self.config.nodes()
        )
        return f"controller.quorum.voters={voters}"

    def _cluster_id(self) -> str:
        """The one cluster id every node of this stack is formatted with."""
        path = self.config.state_dir.absolute() / CLUSTER_ID_FILE
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id() + "\n", encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def _format_storage(self) -> None:
        """Format the log dir once (``--standalone``: a single node is its only voter)."""
        if (self.data_dir / "meta.properties").is_file():
            return
        standalone = ["--standalone"] if self.config.brokers == 1 else []
        argv = self._jvm(
            "kafka.tools.StorageTool",
            "format",
            *standalone,
            "--ignore-formatted",
            "-t",
            self._cluster_id(),
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
        if self.config.secure:
            secure_files(self.config).ensure()
        self._write_config()
        self._format_storage()

    def _launch(self) -> None:
        argv = self._jvm("kafka.Kafka", str(self.home / "server.properties"))
        self._spawn_jvm(argv, cwd=self.home, env=os.environ)
