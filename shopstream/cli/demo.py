"""`shopstream demo`."""

from __future__ import annotations


def demo() -> None:
    """The whole pipeline on the local default, end to end."""
    raise NotImplementedError
