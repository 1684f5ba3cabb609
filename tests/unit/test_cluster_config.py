"""The cluster and secured-listener shapes of the launcher, without starting Kafka:
node ports, the rendered server.properties, certificates, and docker-compose.yml in
step with the launcher's constants."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaError
from cryptography import x509

from shopstream.config import Settings
from shopstream.errors import ConfigError, StackError
from shopstream.kafka.errors import diagnose
from shopstream.kafka.topics import default_replication
from shopstream.stack import LocalStack, StackConfig
from shopstream.stack.broker import KafkaPart
from shopstream.stack.config import (
    CLUSTER_MIN_ISR,
    CLUSTER_REPLICATION,
    DEFAULT_KAFKA_PORT,
    DEFAULT_SECURE_PORT,
    NODE_PORT_STEP,
)
from shopstream.stack.security import SCRAM_MECHANISM, SCRAM_USER, SecureFiles

ROOT = Path(__file__).resolve().parents[2]


def _properties(part: KafkaPart) -> dict[str, str]:
    part._write_config()
    text = (part.home / "server.properties").read_text(encoding="utf-8")
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_single_node_default_is_unchanged(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path / "s")
    (node,) = config.nodes()
    assert (node.node_id, node.kafka, node.controller) == (1, 9092, 9093)
    props = _properties(KafkaPart(config))
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert "SASL_SSL" not in props["listeners"]
    assert config.ports() == {
        "kafka": 9092,
        "controller": 9093,
        "registry": 8081,
        "registry_management": 9081,
        "postgres": 55432,
    }


def test_three_nodes_form_a_static_quorum_with_replication_three(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path / "s", brokers=3)
    assert [n.kafka for n in config.nodes()] == [9092, 9092 + NODE_PORT_STEP, 9092 + 200]
    stack = LocalStack(config)
    assert [part.name for part in stack.brokers] == ["kafka", "kafka-2", "kafka-3"]
    assert stack.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
    props = _properties(stack.broker(2))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
    )
    assert "controller.quorum.bootstrap.servers" not in props
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
        assert props[key] == "2", key
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193"


def test_isolated_cluster_ports_are_all_distinct(tmp_path: Path) -> None:
    config = StackConfig.isolated(tmp_path, tmp_path / "s", brokers=3, secure=True)
    ports = config.ports()
    assert len(ports) == 5 + 1 + 3 * 2
    assert len(set(ports.values())) == len(ports)


def test_saved_shape_round_trips_and_bad_counts_are_refused(tmp_path: Path) -> None:
    config = StackConfig.isolated(tmp_path, tmp_path / "s", brokers=3, secure=True)
    config.save()
    loaded = StackConfig.load_saved(tmp_path, tmp_path / "s")
    assert loaded == config
    with pytest.raises(ConfigError, match="brokers must be between"):
        StackConfig(tmp_path, tmp_path, brokers=0)
    with pytest.raises(ConfigError, match="extra node ports"):
        StackConfig(tmp_path, tmp_path, brokers=3, node_ports=(1, 2, 3))


def test_replication_follows_the_cluster_up_to_three() -> None:
    assert [default_replication(n) for n in (0, 1, 2, 3, 5)] == [1, 1, 2, 3, 3]


def test_secure_files_are_private_and_the_certificate_names_loopback(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path / "secure")
    files.ensure()
    first_password = files.password()
    files.ensure()  # kept, not regenerated
    assert files.password() == first_password and len(first_password) >= 24
    for path in (files.client_env, files.private_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    settings = files.client_settings("127.0.0.1:9094")
    assert settings["KAFKA_SASL_MECHANISM"] == SCRAM_MECHANISM
    assert first_password not in str(settings)
    files.write_client_env(settings)
    assert f"KAFKA_SASL_PASSWORD={first_password}" in files.client_env.read_text()
    assert stat.S_IMODE(files.client_env.stat().st_mode) == 0o600


def test_secure_listener_config_holds_the_key_but_no_password(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path / "s", secure=True)
    part = KafkaPart(config)
    files = SecureFiles(config.state_dir.absolute() / "secure")
    files.ensure()
    props = _properties(part)
    assert props["listeners"].endswith(f"SASL_SSL://127.0.0.1:{DEFAULT_SECURE_PORT}")
    assert props["sasl.enabled.mechanisms"] == SCRAM_MECHANISM
    assert props["listener.name.sasl_ssl.ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY")
    assert files.password() not in (part.home / "server.properties").read_text()
    assert stat.S_IMODE((part.home / "server.properties").stat().st_mode) == 0o600


def test_changing_the_shape_of_an_existing_stack_is_refused(tmp_path: Path) -> None:
    one = StackConfig.isolated(tmp_path, tmp_path / "s")
    one.save()
    (tmp_path / "s" / "kafka" / "data").mkdir(parents=True)
    three = StackConfig.from_settings(
        Settings.load(), cache_dir=tmp_path, state_dir=tmp_path / "s", brokers=3
    )
    with pytest.raises(StackError, match=r"cannot change shape"):
        LocalStack(three).up()


class _Error:
    def __init__(self, code: int, text: str = "") -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


@pytest.mark.parametrize(
    ("code", "text", "protocol", "needle"),
    [
        (KafkaError._AUTHENTICATION, "invalid credentials", "SASL_SSL", "KAFKA_SASL_PASSWORD"),
        (KafkaError._SSL, "certificate verify failed", "SASL_SSL", "KAFKA_SSL_CA_LOCATION"),
        (KafkaError._SSL, "handshake", "SSL", "KAFKA_SSL_"),
    ],
)
def test_connection_failures_name_the_setting(
    code: int, text: str, protocol: str, needle: str
) -> None:
    hint = diagnose({"security.protocol": protocol}, [_Error(code, text)])  # type: ignore[list-item]
    assert hint is not None and needle in hint


def test_nothing_listening_is_no_protocol_hint() -> None:
    conf = {"security.protocol": "PLAINTEXT", "bootstrap.servers": "127.0.0.1:1"}
    assert diagnose(conf, [_Error(KafkaError._ALL_BROKERS_DOWN)]) is None  # type: ignore[list-item]


# -- docker-compose.yml in step with the launcher ----------------------------------------


def _compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _env_file(name: str) -> dict[str, str]:
    lines = (ROOT / "compose" / name).read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_cluster_profile_matches_the_launcher() -> None:
    services = _compose()["services"]
    cluster = _env_file("cluster.env")
    assert cluster["COMPOSE_PROFILES"] == "cluster"
    assert cluster["SHOPSTREAM_REPLICATION"] == str(CLUSTER_REPLICATION)
    assert cluster["SHOPSTREAM_MIN_ISR"] == str(CLUSTER_MIN_ISR)
    nodes = ["kafka", "kafka-2", "kafka-3"]
    voters = cluster["SHOPSTREAM_QUORUM_VOTERS"].split(",")
    assert voters == [f"{n + 1}@{name}:9093" for n, name in enumerate(nodes)]
    assert cluster["SHOPSTREAM_COMPOSE_BOOTSTRAP"] == ",".join(f"{n}:29092" for n in nodes)
    for index, name in enumerate(nodes):
        service = services[name]
        env = service["environment"]
        assert isinstance(env, dict)
        assert env["KAFKA_NODE_ID"] == index + 1
        host_port = DEFAULT_KAFKA_PORT + NODE_PORT_STEP * index
        assert f"127.0.0.1:{host_port}:{host_port}" in service["ports"]  # type: ignore[operator]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "${SHOPSTREAM_REPLICATION:-1}"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "${SHOPSTREAM_MIN_ISR:-1}"
        assert env["KAFKA_HEAP_OPTS"] == "-Xms256m -Xmx512m"
        assert (service.get("profiles") or []) == ([] if index == 0 else ["cluster"])


def test_compose_secured_listener_matches_the_launcher() -> None:
    services = _compose()["services"]
    secure = _env_file("secure.env")
    kafka = services["kafka"]
    env = kafka["environment"]
    assert isinstance(env, dict)
    assert f"SASL_SSL://:{DEFAULT_SECURE_PORT}" in secure["SHOPSTREAM_NODE1_LISTENERS"]
    assert f"127.0.0.1:{DEFAULT_SECURE_PORT}:{DEFAULT_SECURE_PORT}" in kafka["ports"]  # type: ignore[operator]
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == SCRAM_MECHANISM
    assert "SASL_SSL:SASL_SSL" in str(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
    job = services["scram-user"]
    assert f"--entity-name {SCRAM_USER}" in str(job["command"])
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"password=(?!\$)", text, re.IGNORECASE) is None  # only variables
