"""Fixtures of the in-process tests: a fresh back-end per test, on SQLite in a temporary home."""
import subprocess

import pytest

from backend.cloud import Cloud
from backend.config import load_config
from backend.instances import LaunchRequest
from backend.worker import Worker
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



@pytest.fixture
def launched(tmp_path):
    """A factory of (cloud, worker, owner, instance ids): `count` instances of a tiny image that a
    worker of this process deployed on `hosts` simulated hosts; all stopped and closed afterwards."""
    made = []

    def launch(hosts, cpus, memory_mib, count, instance_type='m1.small'):
        cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(tmp_path)}))
        user = cloud.users.create('alice')
        disk = tmp_path / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        image = cloud.images.register_file(disk, 'tiny', user.account_id, public=True)
        cloud.hosts.add_simulated(hosts, cpus=cpus, memory_mib=memory_mib)
        worker = Worker(cloud)
        made.append((cloud, worker))
        worker.claim_hosts()
        started = cloud.instances.run(user.account_id, LaunchRequest(image.image_id, count, count, instance_type))
        worker.dispatch(wait=True)
        return cloud, worker, user.account_id, [instance.instance_id for instance in started]
    yield launch
    for cloud, worker in made:
        worker.stop()
        cloud.close()
