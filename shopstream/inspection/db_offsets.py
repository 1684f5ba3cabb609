"""The offsets the project's consumer groups store in the database, read-only.

Each group writes its projection rows and its next offsets in one transaction, into
``consumer_offsets(group_id, topic, partition, next_offset)``. ``inspect lag`` shows
them next to the offsets committed to Kafka. When the database or the table is not
there, :func:`read_db_offsets` returns None and the column is left out. A SQLite file
is opened read-only (a missing file is not created).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Table, create_engine, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from shopstream.db.engine import describe_db_error, normalize_url
from shopstream.db.models import ConsumerOffset
from shopstream.errors import ConnectionFailed

CONNECT_TIMEOUT_S = 5

CONSUMER_OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]

DbOffsets = dict[tuple[str, int], int]


def read_only_engine(database_url: str) -> Engine | None:
    """An engine that cannot create or change the database; None for a missing SQLite file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        options = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": "-c default_transaction_read_only=on",
        }
        return create_engine(normalize_url(database_url), connect_args=options)
    if not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    if not path.is_file():
        return None
    return create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def read_db_offsets(database_url: str, group_id: str) -> DbOffsets | None:
    """``(topic, partition) → next_offset`` of ``group_id``; None without database or table."""
    engine = read_only_engine(database_url)
    if engine is None:
        return None
    try:
        return _select_offsets(engine, group_id)
    except SQLAlchemyError as exc:
        raise ConnectionFailed(
            f"reading consumer_offsets from the database failed: {describe_db_error(exc)}"
        ) from None
    finally:
        engine.dispose()


def _select_offsets(engine: Engine, group_id: str) -> DbOffsets | None:
    table = CONSUMER_OFFSETS
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, table.name):
            return None
        query = select(table.c.topic, table.c.partition, table.c.next_offset).where(
            table.c.group_id == group_id
        )
        rows = connection.execute(query).all()
    return {(str(topic), int(partition)): int(offset) for topic, partition, offset in rows}
