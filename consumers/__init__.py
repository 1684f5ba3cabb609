"""Consumer side: ``runtime/`` (the machinery shared by every group: poll, decode, apply with
the offsets, dead-letter, daemon, rebuild) and ``projections/`` (one module per group)."""
