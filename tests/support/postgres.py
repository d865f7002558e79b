"""A fresh PostgreSQL database per test, on the server `scripts/start-postgres.sh` started."""
import contextlib
import os
import secrets
import subprocess

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


def open_cloud(environ):
    """A Cloud on the state directory and database that `environ` names."""
    from backend.cloud import Cloud
    from backend.config import load_config
    return Cloud.open(load_config(environ))


def prepare(environ, hosts=4, cpus=4, memory=2048):
    """User alice with a public image, and simulated hosts: (alice's account, the image id)."""
    with open_cloud(environ) as cloud:
        user = cloud.users.create('alice')
        disk = f"{environ['RESERVOIR_HOME']}/tiny.qcow2"
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '16M'], check=True)
        image = cloud.images.register_file(disk, 'tiny', user.account_id, public=True)
        cloud.hosts.add_simulated(hosts, cpus=cpus, memory_mib=memory)
        return user.account_id, image.image_id
