"""The metrics directories of ``serve --workers``: which leftovers a start removes.

A directory named for a dead owner pid is removed; one whose owner runs, a symlink of
that name (and what it points to), a file, another user's directory and any other
name are left untouched. The end-to-end case (a parent killed with ``kill -9``, then
the next start) is in tests/faults/test_services_workers.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shopstream.services.metrics import DIRECTORY_PREFIX, remove_abandoned


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_only_a_dead_owners_directories_are_removed(tmp_path: Path, dead_pid: int) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")

    abandoned = root / f"{DIRECTORY_PREFIX}{dead_pid}-ab_12cd3"
    abandoned.mkdir()
    (abandoned / "counter_1.db").write_bytes(b"\0" * 16)
    (abandoned / "link").symlink_to(outside)  # removed as a link, not followed
    live = root / f"{DIRECTORY_PREFIX}{os.getpid()}-ab_12cd3"
    live.mkdir()
    link = root / f"{DIRECTORY_PREFIX}{dead_pid}-linklink"
    link.symlink_to(outside)
    file = root / f"{DIRECTORY_PREFIX}{dead_pid}-filefile"
    file.write_text("not a directory")
    others = [
        root / f"{DIRECTORY_PREFIX}abcd1234",  # the name before the owner's pid was in it
        root / f"{DIRECTORY_PREFIX}{dead_pid}",
        root / f"{DIRECTORY_PREFIX}0-abcd1234",
        root / f"{DIRECTORY_PREFIX}99999999999999999999-abcd1234",
        root / f"{DIRECTORY_PREFIX}{dead_pid}-ABCD1234",
        root / f"x{DIRECTORY_PREFIX}{dead_pid}-abcd1234",
        root / f"{DIRECTORY_PREFIX}{dead_pid}-abcd1234.old",
    ]
    for other in others:
        other.mkdir()

    assert remove_abandoned(root) == [abandoned]

    assert not abandoned.exists()
    assert live.is_dir()
    assert link.is_symlink() and (outside / "precious").read_text() == "keep"
    assert file.read_text() == "not a directory"
    assert all(other.is_dir() for other in others)
    assert remove_abandoned(root) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_another_users_directory_is_left(tmp_path: Path, dead_pid: int) -> None:
    theirs = tmp_path / f"{DIRECTORY_PREFIX}{dead_pid}-abcd1234"
    theirs.mkdir()
    os.chown(theirs, 12345, 12345)
    assert remove_abandoned(tmp_path) == []
    assert theirs.is_dir()


def test_a_missing_temporary_directory_removes_nothing(tmp_path: Path) -> None:
    assert remove_abandoned(tmp_path / "missing") == []
