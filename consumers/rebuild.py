"""`shopstream consume rebuild GROUP`: empty one group's tables and offsets, replay its topic.

(Placeholder until the projections work lands: see the read-model issue.)
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.runtime import RuntimeOptions
from shopstream.config import Settings
from shopstream.errors import UsageError


def rebuild_groups(settings: Settings, groups: Sequence[str], runtime: RuntimeOptions) -> int:
    raise UsageError("rebuild is not available yet")
