"""`shopstream simulate`."""

from __future__ import annotations


def simulate() -> None:
    """Realistic shoppers: carts, checkouts, orders, payments, cancellations."""
    raise NotImplementedError
