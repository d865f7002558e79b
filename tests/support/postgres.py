"""A fresh PostgreSQL database per test, on the server `scripts/start-postgres.sh` started."""
import contextlib
import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ENVIRONMENT_VARIABLE = 'RESERVOIR_TEST_PG_URL'


def server_url():
    url = os.environ.get(ENVIRONMENT_VARIABLE)
    if not url:
        pytest.skip(f'{ENVIRONMENT_VARIABLE} is not set: run the suite with `make test`, which starts '
                    'PostgreSQL (scripts/start-postgres.sh) and sets it')
    return url


@contextlib.contextmanager
def fresh_database():
    """Yield the URL of a new, empty database; drop it afterwards."""
    base = make_url(server_url())
    name = f'reservoir_{secrets.token_hex(6)}'
    admin = create_engine(base.set(database='postgres'), isolation_level='AUTOCOMMIT')
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE {name}'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)'))
        admin.dispose()
