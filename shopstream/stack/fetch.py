"""Fetching the stack's Java parts from Maven Central, once, into the download cache.

Each fetch writes a marker file only after it fully succeeded; a fetch without
its marker (interrupted, failed) is thrown away and redone. A lock file keeps two
``stack up`` runs from fetching into the same cache at the same time.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template

from shopstream.errors import StackError
from shopstream.stack.config import APICURIO_VERSION, KAFKA_VERSION, LOG4J_VERSION
from shopstream.stack.process import file_lock

Progress = Callable[[str], None]
MARKER = ".fetched"
MVN_TIMEOUT = 1800.0


def render_template(name: str, **values: object) -> str:
    """A file from ``shopstream/stack/templates`` with ``${name}`` placeholders filled."""
    text = resources.files("shopstream.stack").joinpath("templates", name).read_text("utf-8")
    return Template(text).substitute({key: str(value) for key, value in values.items()})


def kafka_home(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def apicurio_home(cache_dir: Path) -> Path:
    return cache_dir / f"apicurio-registry-{APICURIO_VERSION}"


def _mvn_failure_reason(log_file: Path) -> str:
    """The first ``[ERROR]`` line mvn wrote, shortened, as the cause of a failed fetch."""
    try:
        lines = log_file.read_text("utf-8", "replace").splitlines()
    except OSError:
        return "mvn failed"
    errors = [line.removeprefix("[ERROR]").strip() for line in lines if "[ERROR]" in line]
    reason = next((line for line in errors if line), lines[-1] if lines else "mvn failed")
    return reason if len(reason) <= 240 else reason[:237] + "..."


def run_mvn(args: list[str], *, cwd: Path, log_file: Path, what: str) -> None:
    """Run Maven in batch mode, output to ``log_file``; a one-line StackError on failure."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"Maven (mvn) is needed to fetch {what} from Maven Central and was not found; "
            "install it (apt-get install maven) and run again"
        )
    with log_file.open("wb") as log:
        try:
            result = subprocess.run(
                [mvn, "-B", "-q", *args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=MVN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StackError(
                f"fetching {what} took over {MVN_TIMEOUT:.0f} s; see {log_file}"
            ) from None
    if result.returncode != 0:
        raise StackError(
            f"fetching {what} from Maven Central failed: {_mvn_failure_reason(log_file)}; "
            f"check network access to Maven Central (or ~/.m2/settings.xml) and run again "
            f"(log: {log_file})"
        )


def ensure_kafka_libs(cache_dir: Path, progress: Progress) -> Path:
    """The directory of Kafka broker jars (plus log4j2), fetched on first use."""
    home = kafka_home(cache_dir)
    libs = home / "libs"
    with file_lock(cache_dir / ".fetch.lock"):
        if (home / MARKER).is_file():
            return libs
        progress(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (once)")
        shutil.rmtree(libs, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        pom = render_template(
            "kafka-pom.xml", kafka_version=KAFKA_VERSION, log4j_version=LOG4J_VERSION
        )
        (home / "pom.xml").write_text(pom, encoding="utf-8")
        run_mvn(
            [
                "-f",
                "pom.xml",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
            ],
            cwd=home,
            log_file=home / "fetch.log",
            what=f"Apache Kafka {KAFKA_VERSION}",
        )
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise StackError(f"the Kafka fetch left no kafka_2.13 jar in {libs}; run again")
        (home / MARKER).write_text(KAFKA_VERSION, encoding="utf-8")
        return libs


def _extract(archive: Path, target: Path) -> Path:
    """Unpack ``archive`` into ``target`` safely; return the folder holding quarkus-run.jar."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    runners = sorted(target.glob("**/quarkus-run.jar"), key=lambda path: len(path.parts))
    if not runners:
        raise StackError(
            f"{archive.name} holds no quarkus-run.jar; remove {target.parent} and retry"
        )
    return runners[0].parent


def ensure_apicurio_app(cache_dir: Path, progress: Progress) -> Path:
    """The extracted Apicurio Registry app (the folder with quarkus-run.jar)."""
    home = apicurio_home(cache_dir)
    marker = home / MARKER
    with file_lock(cache_dir / ".fetch.lock"):
        if marker.is_file():
            return home / marker.read_text(encoding="utf-8").strip()
        progress(f"fetching Apicurio Registry {APICURIO_VERSION} from Maven Central (once)")
        download = home / "download"
        shutil.rmtree(download, ignore_errors=True)
        download.mkdir(parents=True)
        run_mvn(
            [
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all",
                f"-DoutputDirectory={download}",
            ],
            cwd=download,
            log_file=home / "fetch.log",
            what=f"Apicurio Registry {APICURIO_VERSION}",
        )
        archives = list(download.glob("*.tar.gz"))
        if not archives:
            raise StackError(f"the Apicurio fetch left no archive in {download}; run again")
        progress(f"unpacking {archives[0].name}")
        root = _extract(archives[0], home / "app")
        shutil.rmtree(download, ignore_errors=True)
        marker.write_text(str(root.relative_to(home)), encoding="utf-8")
        return root
