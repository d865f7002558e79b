"""Fixtures for the client tests: the server's own configuration, fresh names, public keys."""
import re
import uuid

import pytest

from backend.config import load_config

from tests.support.postgres import fresh_database
from tests.support.server import LOAD_TEST_QUOTAS

from .keys import new_ed25519_public_key, new_rsa_public_key


@pytest.fixture(scope='session')
def cloud_config(cloud_server):
    """The configuration the live server runs with: region, zones, instance types."""
    return load_config({'RESERVOIR_HOME': str(cloud_server.home)})


@pytest.fixture
def key_name(request):
    """A key pair name no other test uses, recognisable in the server log."""
    readable = re.sub(r'[^A-Za-z0-9]+', '-', request.node.name)[:40]
    return f'{readable}-{uuid.uuid4().hex[:8]}'


@pytest.fixture(scope='session')
def rsa_public_key():
    return new_rsa_public_key()


@pytest.fixture(scope='session')
def ed25519_public_key():
    return new_ed25519_public_key()


@pytest.fixture
def pg_home(tmp_path):
    """The environment of a cloud on a fresh PostgreSQL database of its own."""
    with fresh_database() as url:
        yield {'RESERVOIR_HOME': str(tmp_path), 'RESERVOIR_DATABASE_URL': url, **LOAD_TEST_QUOTAS}
