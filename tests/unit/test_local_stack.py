"""The local launcher's pieces, without starting Kafka or the registry.

Failures a person meets (no Java, no mvn, no network, a busy port) must end in one
line naming the cause and the fix; pid files must never make us signal a process
that is not ours.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shopstream.config import Settings
from shopstream.errors import ConfigError, StackError
from shopstream.stack import LocalStack, StackConfig
from shopstream.stack.broker import random_cluster_id
from shopstream.stack.fetch import MARKER, ensure_kafka_libs, kafka_home, render_template
from shopstream.stack.java import find_java, parse_java_major
from shopstream.stack.process import free_ports, is_ours, port_is_free, terminate, wait_until

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def _ignore(_: str) -> None:
    pass


# -- Java ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('openjdk version "21.0.4-ea" 2024-07-16', 21),
        ('java version "1.8.0_402"', 8),
        ("no version here", None),
    ],
)
def test_java_versions_are_parsed(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_a_new_enough_java_is_chosen_and_a_too_old_one_is_named(tmp_path: Path) -> None:
    old = _script(tmp_path / "java17", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2")
    new = _script(tmp_path / "java25", "echo 'openjdk version \"25\" 2025-09-16' >&2")

    assert find_java(21, "the registry", [old, new]).path == new
    with pytest.raises(StackError) as caught:
        find_java(21, "Apicurio Registry 3.3.3", [old])
    message = caught.value.message
    assert "needs Java 21 or newer" in message
    assert f"{old} is Java 17" in message
    assert "JAVA_HOME" in message
    with pytest.raises(StackError, match="no java found"):
        find_java(17, "Kafka", [tmp_path / "missing"])


# -- fetching ----------------------------------------------------------------------------


def test_fetch_without_mvn_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(StackError) as caught:
        ensure_kafka_libs(tmp_path / "cache", _ignore)
    assert "mvn" in caught.value.message
    assert "apt-get install maven" in caught.value.message


def test_a_failed_fetch_is_one_line_and_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(
        bin_dir / "mvn",
        "echo '[ERROR] Failed to execute goal: Could not transfer artifact: "
        "Network is unreachable'; exit 1",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cache = tmp_path / "cache"

    with pytest.raises(StackError) as caught:
        ensure_kafka_libs(cache, _ignore)
    message = caught.value.message
    assert "\n" not in message
    assert "Network is unreachable" in message
    assert "Maven Central" in message
    assert not (kafka_home(cache) / MARKER).exists()

    # a fetch that leaves its jars but no marker counts as half-finished: redone
    _script(
        bin_dir / "mvn",
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) d="${a#*=}";; esac; done\n'
        'mkdir -p "$d" && touch "$d/kafka_2.13-4.4.0.jar" "$d/fresh.jar"',
    )
    (kafka_home(cache) / "libs").mkdir(parents=True, exist_ok=True)
    (kafka_home(cache) / "libs" / "stale.jar").touch()
    libs = ensure_kafka_libs(cache, _ignore)
    assert sorted(path.name for path in libs.iterdir()) == ["fresh.jar", "kafka_2.13-4.4.0.jar"]
    assert (kafka_home(cache) / MARKER).is_file()


def test_cli_stack_up_with_a_failing_fetch_is_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "mvn", "echo '[ERROR] Could not resolve host: repo.maven.example'; exit 1")
    ports = free_ports(5)
    flags = ["--kafka-port", "--controller-port", "--registry-port"]
    flags += ["--registry-management-port", "--postgres-port"]
    args = [arg for pair in zip(flags, map(str, ports), strict=True) for arg in pair]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    dirs = ["--cache-dir", str(tmp_path / "cache"), "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(
        [SHOPSTREAM, "stack", "up", *dirs, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Could not resolve host" in errors[0]
    assert "Traceback" not in result.stderr


# -- processes and ports ------------------------------------------------------------------


def test_only_a_process_carrying_our_marker_is_signalled(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    other = subprocess.Popen(sleeper, start_new_session=True)
    ours = subprocess.Popen([*sleeper, marker], start_new_session=True)
    try:
        assert not is_ours(other.pid, marker)
        assert terminate(other.pid, marker, timeout=1) is False
        assert other.poll() is None  # untouched

        # right after fork the child may still show our own command line: wait for exec
        wait_until(lambda: is_ours(ours.pid, marker), timeout=10, what="the sleeper")
        assert terminate(ours.pid, marker, timeout=5) is True
        assert ours.wait(timeout=5) is not None
    finally:
        other.kill()
        other.wait()
        ours.kill()
        ours.wait()


def test_a_stale_pid_file_never_stops_a_stranger(tmp_path: Path) -> None:
    config = StackConfig.isolated(tmp_path / "cache", tmp_path / "state")
    stack = LocalStack(config)
    stack.kafka.home.mkdir(parents=True)
    stack.kafka.pid_file.write_text(f"{os.getpid()}\n")  # the test runner itself

    assert not stack.kafka.is_running()
    assert stack.down() == []
    assert not stack.kafka.pid_file.exists()
    assert [status.running for status in stack.status()] == [False, False, False]


def test_port_checks() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(port) for port in ports)


# -- configuration ---------------------------------------------------------------------------


def test_stack_config_rejects_clashing_or_bad_ports(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must all differ"):
        StackConfig(tmp_path, tmp_path, kafka_port=9092, registry_port=9092)
    with pytest.raises(ConfigError, match="between 1 and 65535"):
        StackConfig(tmp_path, tmp_path, postgres_port=70000)


def test_ports_saved_by_up_are_found_again_and_flags_win(tmp_path: Path) -> None:
    settings = Settings.load(shopstream_cache_dir=str(tmp_path / "cache"))
    default = StackConfig.from_settings(settings)
    assert default.state_dir == tmp_path / "cache" / "stack"
    assert (default.kafka_port, default.registry_port) == (9092, 8081)

    StackConfig.isolated(default.cache_dir, tmp_path / "state").save()
    saved = StackConfig.from_settings(settings, state_dir=tmp_path / "state")
    assert saved.kafka_port != 9092
    flagged = StackConfig.from_settings(settings, state_dir=tmp_path / "state", kafka_port=29092)
    assert flagged.kafka_port == 29092
    assert flagged.registry_port == saved.registry_port


def test_broker_config_listens_and_advertises_loopback_only(tmp_path: Path) -> None:
    text = render_template(
        "server.properties", kafka_port=19999, controller_port=19998, data_dir=tmp_path
    )
    listeners = [line for line in text.splitlines() if "listeners=" in line]
    assert listeners
    assert all("127.0.0.1" in line and "0.0.0.0" not in line for line in listeners)
    assert "controller.quorum.bootstrap.servers=127.0.0.1:19998" in text
    assert f"log.dirs={tmp_path}" in text


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(value) == 22 and not value.startswith("-") for value in ids)
