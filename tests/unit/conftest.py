"""Fixtures of the in-process tests: a fresh back-end per test, on SQLite in a temporary home."""
import pytest

from backend.cloud import Cloud
from tests.support.harness import CloudUnderTest
from tests.support.netns_lab import Lab


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    """A Cloud on its own state directory, untouched by the developer's environment."""
    monkeypatch.setenv('RESERVOIR_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('RESERVOIR_DATABASE_URL', raising=False)
    monkeypatch.delenv('RESERVOIR_CONF', raising=False)
    with Cloud.open() as opened:
        yield opened


@pytest.fixture
def world(tmp_path):
    """A whole cloud in this process, with boto3 clients that reach its app (tests/support/harness)."""
    deployment = CloudUnderTest(tmp_path)
    yield deployment
    deployment.close()


@pytest.fixture
def ec2(world):
    return world.client('alice')


@pytest.fixture
def lab():
    """A machine of network namespaces (tests/support/netns_lab), removed afterwards."""
    made = Lab()
    yield made
    made.close()
