"""Checks shared by command options that Click's own types do not make."""

from __future__ import annotations

import math

import typer


def finite(value: float | None) -> float | None:
    """Option callback: refuse ``nan`` and ``inf`` (Click's float ranges let them through).

    ``nan`` passes every ``min``/``max`` comparison, so ``--duration nan`` would run
    forever and ``--timeout nan`` would reach the clients.
    """
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number.")
    return value
