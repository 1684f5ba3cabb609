"""The local PostgreSQL of ``stack up --postgres``: password authentication, a private
password file, and folders that are never reached through someone else's symlink.

A private PostgreSQL (only that part of the stack) on a free port in a temp dir; no
shared stack is touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shopstream.config import Settings
from shopstream.errors import StackError
from shopstream.stack import LocalStack, StackConfig
from shopstream.stack.postgres import PostgresPart

pytestmark = pytest.mark.skipif(
    shutil.which("initdb") is None and not Path("/usr/lib/postgresql").is_dir(),
    reason="needs the PostgreSQL server binaries",
)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shopstream-pg-test-"))
    path.chmod(0o755)  # reachable by the 'postgres' user when we run as root
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config(state_dir: Path) -> StackConfig:
    return StackConfig.isolated(Settings.load().shopstream_cache_dir, state_dir, True)


def test_password_authentication_with_a_private_generated_password(state_dir: Path) -> None:
    part = PostgresPart(config(state_dir))
    try:
        part.start()
        password = part.password()
        assert password is not None
        assert len(password) >= 24
        info = part.password_file.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.geteuid()
        # the URL printed by `stack up` (and handed to the tests' conftest) carries it
        url = LocalStack(part.config).endpoints.database_url
        assert url is not None
        assert f"shopstream:{password}@127.0.0.1:{part.config.postgres_port}/" in url
        with psycopg.connect(part.connect_url()) as conn:
            method = conn.execute("SELECT auth_method FROM pg_hba_file_rules").fetchall()
        assert {row[0] for row in method} == {"scram-sha-256"}
        port = part.config.postgres_port
        for wrong in ("", ":wrong"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(f"postgresql://shopstream{wrong}@127.0.0.1:{port}/postgres")
        assert not list(part.root.glob("initdb-password*"))  # the initdb copy is gone
    finally:
        part.purge()
    assert not part.password_file.exists()
    assert not part.home.exists()


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of someone else's that a planted symlink points at."""
    folder = tmp_path / "victim"
    folder.mkdir(mode=0o700)
    (folder / "precious").write_text("keep me")
    return folder


def assert_untouched(victim: Path, before: os.stat_result) -> None:
    after = victim.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )
    assert (victim / "precious").read_text() == "keep me"


def test_a_planted_symlink_as_the_cluster_folder_is_refused(state_dir: Path, victim: Path) -> None:
    part = PostgresPart(config(state_dir))
    part.home.symlink_to(victim, target_is_directory=True)
    before = victim.stat()

    for step in (part._make_root, part.purge):
        with pytest.raises(StackError, match=r"refusing to use .* symlink"):
            step()
        assert_untouched(victim, before)


@pytest.mark.skipif(os.geteuid() != 0, reason="the relocated folder exists only as root")
def test_a_symlink_planted_at_the_relocated_folder_is_refused(
    state_dir: Path, victim: Path
) -> None:
    """Root relocates the cluster into the database user's home; that user could put a
    symlink there first. Preparing and purging must not follow it."""
    part = PostgresPart(config(state_dir))
    relocated = part._relocated()
    assert relocated is not None
    relocated.symlink_to(victim, target_is_directory=True)
    try:
        part.home.symlink_to(relocated, target_is_directory=True)
        before = victim.stat()
        for step in (part._make_root, part._prepare, part.purge):
            with pytest.raises(StackError, match=r"refusing to use .*: it is a symlink"):
                step()
            assert_untouched(victim, before)
    finally:
        relocated.unlink()
