"""The SQLite connection settings every engine applies (shopstream.db.engine)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from shopstream.db.engine import WAL_AUTOCHECKPOINT_PAGES, make_engine


def test_sqlite_connections_use_wal_with_a_large_checkpoint_interval(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint")
            }
    finally:
        engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "wal_autocheckpoint": WAL_AUTOCHECKPOINT_PAGES,
    }
