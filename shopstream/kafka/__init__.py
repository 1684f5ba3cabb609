"""Kafka plumbing: client factories, topics, offset look-ups, error descriptions."""
