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

SAVED_CONFIG = "stack.json"
PORT_FIELDS = (
    "kafka_port",
    "controller_port",
    "registry_port",
    "registry_management_port",
    "postgres_port",
)


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

    def __post_init__(self) -> None:
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
        return replace(base, **given)

    @classmethod
    def isolated(cls, cache_dir: Path, state_dir: Path, with_postgres: bool = False) -> StackConfig:
        """A stack on free ports in its own state dir (tests)."""
        kafka, controller, registry, management, postgres = free_ports(len(PORT_FIELDS))
        return cls(
            cache_dir,
            state_dir,
            kafka_port=kafka,
            controller_port=controller,
            registry_port=registry,
            registry_management_port=management,
            postgres_port=postgres,
            with_postgres=with_postgres,
        )

    @classmethod
    def load_saved(cls, cache_dir: Path, state_dir: Path) -> StackConfig | None:
        """The ports an earlier ``up`` recorded in ``state_dir``, if any."""
        try:
            saved = json.loads((state_dir / SAVED_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ports: dict[str, Any] = {n: int(saved[n]) for n in PORT_FIELDS if n in saved}
        return replace(cls(cache_dir, state_dir), **ports)

    def save(self) -> None:
        """Record the ports, so ``status`` and ``down`` find this stack again."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {name: getattr(self, name) for name in PORT_FIELDS}
        (self.state_dir / SAVED_CONFIG).write_text(json.dumps(data, indent=2), encoding="utf-8")

    # -- views ----------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        return {name.removesuffix("_port"): getattr(self, name) for name in PORT_FIELDS}

    def same_ports(self, other: StackConfig) -> bool:
        return self.ports() == other.ports()
