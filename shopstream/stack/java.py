"""Finding a Java runtime new enough for each part of the stack.

Kafka 4.x needs Java 17; Apicurio Registry 3.3 is compiled for Java 21. Candidates
are tried in order: ``$JAVA_HOME/bin/java``, ``java`` on ``PATH``, then every
``/usr/lib/jvm/*/bin/java`` (newest first), each asked for ``java -version``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shopstream.errors import StackError

JVM_ROOT = Path("/usr/lib/jvm")
_VERSION = re.compile(r'version "(?P<version>[^"]+)"')


@dataclass(frozen=True)
class JavaRuntime:
    """One ``java`` executable and its feature release (17, 21, 25, ...)."""

    path: Path
    major: int


def parse_java_major(version_output: str) -> int | None:
    """Feature release from ``java -version`` output: '1.8.0_402' → 8, '25' → 25."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    parts = match.group("version").split(".")
    head = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]
    digits = re.match(r"\d+", head)
    return int(digits.group()) if digits else None


def java_candidates() -> list[Path]:
    """Every java executable worth asking, in order of preference, without repeats."""
    found: list[Path] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        found.append(Path(java_home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    found.extend(sorted(JVM_ROOT.glob("*/bin/java"), reverse=True))
    unique: dict[Path, Path] = {}
    for path in found:
        if path.is_file():
            unique.setdefault(path.resolve(), path)
    return list(unique.values())


def probe_java(path: Path) -> JavaRuntime | None:
    """Ask one executable for its version; None when it does not run."""
    try:
        result = subprocess.run(
            [str(path), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = parse_java_major(result.stderr + result.stdout)
    return JavaRuntime(path, major) if major is not None else None


def find_java(
    min_major: int, purpose: str, candidates: Iterable[Path] | None = None
) -> JavaRuntime:
    """The first Java runtime of at least ``min_major``, else a one-line StackError."""
    seen: list[str] = []
    for path in java_candidates() if candidates is None else candidates:
        runtime = probe_java(path)
        if runtime is None:
            continue
        if runtime.major >= min_major:
            return runtime
        seen.append(f"{path} is Java {runtime.major}")
    found = "; ".join(seen) if seen else "no java found"
    raise StackError(
        f"{purpose} needs Java {min_major} or newer ({found}); install a JDK "
        f"{min_major}+ (openjdk-{min_major}-jre-headless or Temurin {min_major}) "
        "and point JAVA_HOME at it"
    )
