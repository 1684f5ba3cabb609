"""The schema registry: administration (register, check compatibility) and read-only look-ups."""
