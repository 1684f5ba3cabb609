"""What every command gets from the top-level callback: the effective settings."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from shopstream.config import Settings

# Wide output when piped, so tables are not truncated in files and CI logs.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings built by the root callback (environment, then global flags)."""
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):
        settings = Settings.load()
        root.obj = settings
    return settings
