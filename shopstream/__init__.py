"""shopstream: an event streaming pipeline for an online shop on Apache Kafka."""

__version__ = "0.1.0"
