"""CreateImage against a simulated host: the request, then the worker's copy of a real qcow2 overlay.

The simulated host runs no QEMU, so each instance's overlay is made here as a real host's
provisioning would make it, and written to, so that the copy has something of its own to keep.
"""
import subprocess
import time

import pytest

from backend.cloud import Cloud
from backend.config import load_config
from backend.errors import Conflict, InvalidValue, NotFound
from backend.images import inspect_disk
from backend.instances import LaunchRequest
from backend.worker import Worker

PATTERN_BYTE = '0xab'
WAIT_SECONDS = 30


@pytest.fixture
def setup(tmp_path):
    cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(tmp_path)}))
    user = cloud.users.create('alice')
    base = tmp_path / 'base.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(base), '16M'], check=True)
    kernel = tmp_path / 'kernel'
    kernel.write_bytes(b'kernel')
    aki = cloud.images.register_file(kernel, 'kernel', user.account_id, image_type='kernel')
    image = cloud.images.register_file(base, 'base', user.account_id, kernel_id=aki.image_id)
    cloud.hosts.add_simulated(1, cpus=4, memory_mib=2048)
    worker = Worker(cloud)
    worker.claim_hosts()
    (instance,) = cloud.instances.run(user.account_id, LaunchRequest(image.image_id, 1, 1, 'm1.small'))
    worker.dispatch(wait=True)
    overlay = worker.files.disk(instance.instance_id)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', str(image.path), str(overlay)],
                   check=True)
    subprocess.run(['qemu-io', '-c', f'write -P {PATTERN_BYTE} 1M 64k', str(overlay)], check=True,
                   capture_output=True)
    yield cloud, worker, user.account_id, instance.instance_id, overlay
    worker.stop()
    cloud.close()


def wait_for_image(cloud, worker, owner, image_id):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        worker.snapshots.dispatch()
        (image,) = cloud.images.describe(owner, image_ids=[image_id])
        if image.state != 'pending':
            return image
        time.sleep(0.1)
    raise AssertionError(f'{image_id} is still pending')


def domain_state(worker, instance_id):
    host_id, uri = next(iter(worker._owned.items()))
    return worker.hosts.get(host_id, uri).state(instance_id)


def assert_same_content(overlay, image):
    assert image.state == 'available' and image.disk_format == 'qcow2'
    inspect_disk(image.path)                         # standalone: it refuses images with a backing file
    subprocess.run(['qemu-img', 'compare', '-q', str(overlay), str(image.path)], check=True)


def test_request_checks_instance_state_and_name(setup):
    cloud, worker, owner, instance_id, _ = setup
    with pytest.raises(NotFound):
        cloud.snapshots.create_image(owner, 'i-0123456789abcdef0', 'copy')
    with pytest.raises(InvalidValue):
        cloud.snapshots.create_image(owner, instance_id, 'x')          # names are 3 characters at least
    with pytest.raises(Conflict):
        cloud.snapshots.create_image(owner, instance_id, 'base')       # taken by the source image
    cloud.instances.stop(owner, [instance_id])                          # stopping: not yet
    with pytest.raises(Conflict):
        cloud.snapshots.create_image(owner, instance_id, 'copy')


def test_stopped_instance_is_copied_into_a_private_image_with_its_kernel(setup):
    cloud, worker, owner, instance_id, overlay = setup
    cloud.instances.stop(owner, [instance_id])
    worker.dispatch(wait=True)
    image_id = cloud.snapshots.create_image(owner, instance_id, 'copy', description='saved')
    (pending,) = cloud.images.describe(owner, image_ids=[image_id])
    assert (pending.state, pending.public, pending.owner) == ('pending', False, owner)
    image = wait_for_image(cloud, worker, owner, image_id)
    assert_same_content(overlay, image)
    (instance,) = cloud.instances.describe(owner, ids=[instance_id])
    assert (image.kernel_id, image.ramdisk_id) == (instance.kernel_id, instance.ramdisk_id)
    assert image.kernel_id is not None
    assert instance.state == 'stopped'
    (launched,) = cloud.instances.run(owner, LaunchRequest(image_id, 1, 1, 'm1.small'))
    assert launched.kernel_id == image.kernel_id


@pytest.mark.parametrize('no_reboot', [True, False])
def test_running_instance_is_copied_and_keeps_running(setup, no_reboot):
    cloud, worker, owner, instance_id, overlay = setup
    image_id = cloud.snapshots.create_image(owner, instance_id, 'copy', no_reboot=no_reboot)
    image = wait_for_image(cloud, worker, owner, image_id)
    assert_same_content(overlay, image)
    assert domain_state(worker, instance_id) == 'running'
    assert not worker.in_flight(instance_id)
    (instance,) = cloud.instances.describe(owner, ids=[instance_id])
    assert instance.state == 'running'


def test_missing_disk_fails_the_image_with_a_reason(setup):
    cloud, worker, owner, instance_id, overlay = setup
    overlay.unlink()
    image_id = cloud.snapshots.create_image(owner, instance_id, 'copy', no_reboot=True)
    image = wait_for_image(cloud, worker, owner, image_id)
    assert image.state == 'failed'
    assert 'disk' in cloud.snapshots.failure_reason(image_id)
    assert domain_state(worker, instance_id) == 'running'        # resumed after the failed copy
