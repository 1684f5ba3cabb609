"""The database layer: typed SQLAlchemy 2.0 models, engines, Alembic migrations."""
