"""Run Alembic migrations programmatically (``shopstream db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from shopstream.db.engine import check_database, describe_db_error, lift_statement_timeout
from shopstream.errors import ShopstreamError, UsageError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision``; returns the revision it is at afterwards."""
    if not revision.strip():
        raise UsageError("no revision given (e.g. head)")
    check_database(engine)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            lift_statement_timeout(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except (CommandError, AssertionError) as exc:  # alembic asserts on some, e.g. head+1
        why = " ".join(str(exc).split()) or "not a revision to upgrade to"
        raise UsageError(f"revision {revision!r}: {why}") from None
    except SQLAlchemyError as exc:
        raise ShopstreamError(f"migration failed: {describe_db_error(exc)}") from None
    return current_revision(engine) or "base"


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
