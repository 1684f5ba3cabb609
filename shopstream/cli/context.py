"""What every command gets from the top-level callback: the effective settings."""

from __future__ import annotations

import typer
from rich.console import Console

from shopstream.config import Settings

console = Console()
err_console = Console(stderr=True)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings built by the root callback (environment, then global flags)."""
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):
        settings = Settings.load()
        root.obj = settings
    return settings
