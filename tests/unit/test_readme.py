"""The README's generated parts stay in step with the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_event_catalog_in_readme_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/event_catalog.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_names_every_setting() -> None:
    from shopstream.config import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert name.upper() in readme, f"README.md does not document {name.upper()}"
