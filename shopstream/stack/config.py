"""What a local stack is made of: where it keeps things and which ports it uses.

The download cache (jars, the registry app) is shared and fetched once; the
state dir (data, logs, pid files) belongs to one stack. Tests give each session
its own state dir and free ports, so a developer's own stack is never touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shopstream.config import Settings
from shopstream.errors import ConfigError
from shopstream.stack.process import free_ports

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.3"
APICURIO_VERSION = "3.3.3"

DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_REGISTRY_PORT = 8081
DEFAULT_REGISTRY_MANAGEMENT_PORT = 9081
DEFAULT_POSTGRES_PORT = 55432
DEFAULT_SECURE_PORT = 9094
NODE_PORT_STEP = 100
"""Node n (n >= 2) of a cluster listens on node 1's ports + (n - 1) * NODE_PORT_STEP
unless other ports were given (isolated test stacks pick free ones)."""
MAX_BROKERS = 5
CLUSTER_REPLICATION = 3
"""Replication factor (default, internal topics) of a stack with 3 or more nodes."""
CLUSTER_MIN_ISR = 2

SAVED_CONFIG = "stack.json"
PORT_FIELDS = (
    "kafka_port",
    "controller_port",
    "registry_port",
    "registry_management_port",
    "postgres_port",
)
SHAPE_FIELDS = ("brokers", "secure", "secure_port", "node_ports")


@dataclass(frozen=True)
class NodePorts:
    """The ports of one Kafka node: its client listener, its controller listener and
    (with ``--secure``) its SASL_SSL listener."""

    node_id: int
    kafka: int
    controller: int
    secure: int


@dataclass(frozen=True)
class StackConfig:
    """Directories and ports of one local stack."""

    cache_dir: Path
    state_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    registry_port: int = DEFAULT_REGISTRY_PORT
    registry_management_port: int = DEFAULT_REGISTRY_MANAGEMENT_PORT
    postgres_port: int = DEFAULT_POSTGRES_PORT
    with_postgres: bool = False
    brokers: int = 1
    secure: bool = False
    secure_port: int = DEFAULT_SECURE_PORT
    node_ports: tuple[int, ...] = ()
    """Ports of nodes 2..N, three per node (kafka, controller, secure); empty means
    node 1's ports + a multiple of NODE_PORT_STEP."""

    def __post_init__(self) -> None:
        if not 1 <= self.brokers <= MAX_BROKERS:
            raise ConfigError(f"brokers must be between 1 and {MAX_BROKERS}, got {self.brokers}")
        if self.node_ports and len(self.node_ports) != 3 * (self.brokers - 1):
            raise ConfigError(
                f"{self.brokers} brokers need {3 * (self.brokers - 1)} extra node ports, "
                f"got {len(self.node_ports)}"
            )
        ports = self.ports()
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name} port must be between 1 and 65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"stack ports must all differ, got {ports}")

    # -- construction -------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> StackConfig:
        """Defaults under ``settings.shopstream_cache_dir``, then ports saved in the
        state dir by an earlier ``up``, then the non-None ``overrides`` (CLI flags)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        cache_dir = Path(given.pop("cache_dir", settings.shopstream_cache_dir))
        state_dir = Path(given.pop("state_dir", cache_dir / "stack"))
        base = cls.load_saved(cache_dir, state_dir) or cls(cache_dir, state_dir)
        if given.get("brokers", base.brokers) != base.brokers and "node_ports" not in given:
            given["node_ports"] = ()  # another node count: the default port layout
        return replace(base, **given)

    @classmethod
    def isolated(
        cls,
        cache_dir: Path,
        state_dir: Path,
        with_postgres: bool = False,
        brokers: int = 1,
        secure: bool = False,
    ) -> StackConfig:
        """A stack on free ports in its own state dir (tests)."""
        ports = free_ports(len(PORT_FIELDS) + 1 + 3 * (brokers - 1))
        kafka, controller, registry, management, postgres, secure_port = ports[:6]
        return cls(
            cache_dir,
            state_dir,
            kafka_port=kafka,
            controller_port=controller,
            registry_port=registry,
            registry_management_port=management,
            postgres_port=postgres,
            with_postgres=with_postgres,
            brokers=brokers,
            secure=secure,
            secure_port=secure_port,
            node_ports=tuple(ports[6:]),
        )

    @classmethod
    def load_saved(cls, cache_dir: Path, state_dir: Path) -> StackConfig | None:
        """The ports an earlier ``up`` recorded in ``state_dir``, if any."""
        try:
            saved = json.loads((state_dir / SAVED_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ports: dict[str, Any] = {n: int(saved[n]) for n in PORT_FIELDS if n in saved}
        shape: dict[str, Any] = {n: saved[n] for n in SHAPE_FIELDS if n in saved}
        if "node_ports" in shape:
            shape["node_ports"] = tuple(int(port) for port in shape["node_ports"])
        try:
            return replace(cls(cache_dir, state_dir), **ports, **shape)
        except (ConfigError, TypeError, ValueError):
            return None

    def save(self) -> None:
        """Record the ports, so ``status`` and ``down`` find this stack again."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {name: getattr(self, name) for name in PORT_FIELDS}
        data.update({name: getattr(self, name) for name in SHAPE_FIELDS})
        data["node_ports"] = list(self.node_ports)
        (self.state_dir / SAVED_CONFIG).write_text(json.dumps(data, indent=2), encoding="utf-8")

    # -- views ----------------------------------------------------------------

    def nodes(self) -> tuple[NodePorts, ...]:
        """Every Kafka node, node 1 first."""
        found = [NodePorts(1, self.kafka_port, self.controller_port, self.secure_port)]
        for index in range(1, self.brokers):
            if self.node_ports:
                kafka, controller, secure = self.node_ports[3 * (index - 1) : 3 * index]
            else:
                step = NODE_PORT_STEP * index
                kafka, controller, secure = (
                    self.kafka_port + step,
                    self.controller_port + step,
                    self.secure_port + step,
                )
            found.append(NodePorts(index + 1, kafka, controller, secure))
        return tuple(found)

    @property
    def replication_factor(self) -> int:
        """Default and internal-topic replication factor: min(3, brokers)."""
        return min(CLUSTER_REPLICATION, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return CLUSTER_MIN_ISR if self.brokers >= CLUSTER_REPLICATION else 1

    def ports(self) -> dict[str, int]:
        """Every port of the stack by label (node n > 1: ``kafka_n``, ``controller_n``...)."""
        found = {name.removesuffix("_port"): getattr(self, name) for name in PORT_FIELDS}
        if self.secure:
            found["secure"] = self.secure_port
        for node in self.nodes()[1:]:
            found[f"kafka_{node.node_id}"] = node.kafka
            found[f"controller_{node.node_id}"] = node.controller
            if self.secure:
                found[f"secure_{node.node_id}"] = node.secure
        return found

    def same_ports(self, other: StackConfig) -> bool:
        return self.ports() == other.ports() and self.shape() == other.shape()

    def shape(self) -> tuple[int, bool]:
        """What cannot change while the stack's data exists: node count and security."""
        return (self.brokers, self.secure)
