"""`shopstream db upgrade|current`: Alembic migrations of the read-model database."""

from __future__ import annotations

import typer

from shopstream.cli.context import console, settings_from
from shopstream.config import mask_url_password
from shopstream.db.engine import check_database, make_engine
from shopstream.db.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Migrate the read-model database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(ctx: typer.Context, revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    settings = settings_from(ctx)
    engine = make_engine(settings.database_url, settings=settings)
    try:
        at = upgrade(engine, revision)
    finally:
        engine.dispose()
    console.print(f"{mask_url_password(settings.database_url)}: at revision {at}")


@app.command("current")
def current_cmd(ctx: typer.Context) -> None:
    """Show the database's revision and the latest one."""
    settings = settings_from(ctx)
    engine = make_engine(settings.database_url, settings=settings)
    try:
        check_database(engine)
        at = current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"current: {at or 'none'}  head: {head_revision()}")
