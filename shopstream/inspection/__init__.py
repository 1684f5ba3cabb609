"""Read-only inspection of topics, events, consumer groups, schemas and dead letters.

Nothing in this package joins a consumer group, commits an offset or writes to Kafka,
the registry or the database: readers only ``assign()`` partitions, admin calls only
describe and list, and the database is opened read-only where the driver allows it.
"""
