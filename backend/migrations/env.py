"""Alembic environment: migrates the connection handed over by `backend.db.migrate`.

Run by hand (e.g. `alembic -c backend/migrations/alembic.ini revision --autogenerate -m "..."`),
it connects to the database of the current Reservoir configuration instead.
"""
from alembic import context

from backend.config import load_config
from backend.db import create_database_engine
from backend.models import Base, UTCDateTime


def render_item(kind, item, _autogen_context):
    """Write the columns' own types as plain SQLAlchemy types, so migrations never import models."""
    if kind == 'type' and isinstance(item, UTCDateTime):
        return 'sa.DateTime(timezone=True)'
    return False


def run_migrations(connection):
    # Batch mode lets later migrations alter tables on SQLite, which has almost no ALTER TABLE.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_online():
    connection = context.config.attributes.get('connection')
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_database_engine(load_config().database_url)
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit('offline (--sql) migrations are not supported')
run_online()
