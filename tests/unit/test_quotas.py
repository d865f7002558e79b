"""Per-account quotas, enforced by the back-end in the allocating transaction."""
import subprocess
import threading

import pytest

from backend.errors import BackendError
from backend.image_lifetimes import check_quota
from backend.instances import LaunchRequest, transition
from backend.lifecycle import Event
from backend.models import Instance as InstanceRow


@pytest.fixture
def small(monkeypatch, tmp_path):
    """Configured defaults small enough to reach, set the way administrators set them."""
    for name, value in (('INSTANCES', '3'), ('VCPUS', '4'), ('ELASTIC_IPS', '2'), ('IMAGES', '2')):
        monkeypatch.setenv(f'RESERVOIR_QUOTAS_{name}', value)


@pytest.fixture
def world(small, cloud, tmp_path):
    cloud.hosts.add_simulated(2, cpus=16, memory_mib=8192)
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = cloud.images.register_file(disk, 'tiny', cloud.users.create('owner').account_id,
                                          public=True).image_id
    return cloud, image_id, disk


def launch(cloud, owner, image_id, min_count, max_count=None, instance_type='t1.micro'):
    return cloud.instances.run(owner, LaunchRequest(image_id, min_count, max_count or min_count, instance_type))


def refused(call, *args):
    with pytest.raises(BackendError) as raised:
        call(*args)
    return raised.value.code


def test_instances_launch_up_to_the_quota_then_refuse(world):
    cloud, image_id, _ = world
    owner = cloud.users.create('alice').account_id
    assert len(launch(cloud, owner, image_id, 1, 5)) == 3          # MaxCount trimmed to what is left
    assert refused(launch, cloud, owner, image_id, 1) == 'InstanceLimitExceeded'
    assert len(cloud.instances.describe(owner)) == 3                  # the refusal added nothing


def test_vcpus_are_counted_across_instance_types(world):
    cloud, image_id, _ = world
    owner = cloud.users.create('alice').account_id
    launch(cloud, owner, image_id, 1, instance_type='c1.medium')       # 2 vCPUs of 4
    assert refused(launch, cloud, owner, image_id, 2, 2, 'c1.medium') == 'VcpuLimitExceeded'
    assert len(launch(cloud, owner, image_id, 1, 2, 'c1.medium')) == 1


def test_stopped_instances_free_their_quota_and_starting_takes_it_again(world):
    cloud, image_id, _ = world
    owner = cloud.users.create('alice').account_id
    first = launch(cloud, owner, image_id, 3)
    with cloud.db.write() as session:
        row = session.get(InstanceRow, first[0].instance_id)
        transition(session, row, Event.DEPLOYED)
    cloud.instances.stop(owner, [first[0].instance_id])
    with cloud.db.write() as session:
        transition(session, session.get(InstanceRow, first[0].instance_id), Event.STOPPED)
    launch(cloud, owner, image_id, 1)
    assert refused(cloud.instances.start, owner, [first[0].instance_id]) == 'InstanceLimitExceeded'
    assert cloud.instances.describe(owner, ids=[first[0].instance_id])[0].state == 'stopped'


def test_an_override_for_one_account_changes_only_that_account(world):
    cloud, image_id, _ = world
    alice, bob = cloud.users.create('alice').account_id, cloud.users.create('bob').account_id
    cloud.quotas.set(alice, {'instances': 5, 'vcpus': 5})
    assert len(launch(cloud, alice, image_id, 5)) == 5
    assert refused(launch, cloud, bob, image_id, 4) == 'InstanceLimitExceeded'
    quotas, usage = cloud.quotas.of(alice)
    assert (quotas.instances, usage['instances']) == (5, 5)
    cloud.quotas.set(alice, {'instances': None})
    assert cloud.quotas.of(alice)[0].instances == 3


def test_elastic_ips_and_images_have_quotas(world):
    cloud, _, disk = world
    owner = cloud.users.create('alice').account_id
    cloud.addresses.allocate(owner)
    cloud.addresses.allocate(owner)
    assert refused(cloud.addresses.allocate, owner) == 'AddressLimitExceeded'
    assert len(cloud.addresses.describe(owner)) == 2
    cloud.images.register_file(disk, 'one', owner)
    cloud.images.register_file(disk, 'two', owner)
    assert refused(cloud.images.register_file, disk, 'three', owner) == 'ResourceLimitExceeded'


def test_storage_quota_follows_the_account_override(world):
    cloud, _, disk = world
    alice, bob = cloud.users.create('alice').account_id, cloud.users.create('bob').account_id
    cloud.quotas.set(alice, {'storage': 1024})
    with cloud.db.write() as session:       # what uploads, CopyImage and CreateImage all ask
        with pytest.raises(BackendError) as raised:
            check_quota(session, cloud.images.limits, alice, 2048)
        assert raised.value.code == 'ResourceLimitExceeded' and '1.0 KiB' in raised.value.message
        assert check_quota(session, cloud.images.limits, bob, 2048) > 0


def test_concurrent_allocations_never_pass_the_quota(world):
    cloud, _, _ = world
    owner = cloud.users.create('alice').account_id
    barrier, outcomes = threading.Barrier(6), []

    def allocate():
        barrier.wait()
        try:
            cloud.addresses.allocate(owner)
            outcomes.append('ok')
        except BackendError as error:
            outcomes.append(error.code)
    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ['AddressLimitExceeded'] * 4 + ['ok'] * 2
    assert len(cloud.addresses.describe(owner)) == 2
