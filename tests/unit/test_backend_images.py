import os
import re
import shutil
import subprocess

import pytest

from backend.errors import Conflict, InvalidValue, NotFound
from backend.models import Image as ImageRow, LaunchPermission

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')


@pytest.fixture
def alice(cloud):
    return cloud.users.create('alice').account_id


@pytest.fixture
def bob(cloud):
    return cloud.users.create('bob').account_id


def make_disk(directory, name, disk_format='qcow2', size='16M', *options):
    path = directory / name
    subprocess.run(['qemu-img', 'create', '-q', '-f', disk_format, *options, str(path), size], check=True)
    return path


@pytest.fixture
def disk(tmp_path):
    return make_disk(tmp_path, 'disk.qcow2')


def repository_files(cloud):
    directory = cloud.images.repository.directory
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_register_qcow2_copies_it_into_the_repository(cloud, alice, disk):
    image = cloud.images.register_file(disk, 'debian 12 (small)', alice, description='tiny')
    assert re.fullmatch(r'ami-[0-9a-f]{17}', image.image_id)
    assert (image.name, image.description, image.owner) == ('debian 12 (small)', 'tiny', alice)
    assert (image.image_type, image.state, image.public) == ('machine', 'available', False)
    assert (image.disk_format, image.architecture, image.root_device_name) == ('qcow2', 'x86_64', '/dev/sda1')
    assert image.virtual_size_bytes == 16 * 1024 * 1024
    assert image.path == cloud.config.home / 'images' / f'{image.image_id}.qcow2'
    assert image.size_bytes == image.path.stat().st_size
    assert image.path.read_bytes() == disk.read_bytes()
    assert repository_files(cloud) == [image.path.name]
    assert cloud.images.describe(alice) == [image]


def test_register_raw_keeps_it_raw(cloud, alice, tmp_path):
    image = cloud.images.register_file(make_disk(tmp_path, 'disk.img', 'raw', '1M'), 'raw one', alice)
    assert (image.disk_format, image.virtual_size_bytes) == ('raw', 1024 * 1024)
    assert image.path.name.endswith('.raw')


def test_other_formats_are_converted_to_qcow2(cloud, alice, tmp_path):
    image = cloud.images.register_file(make_disk(tmp_path, 'disk.vmdk', 'vmdk', '2M'), 'from vmware', alice)
    assert image.disk_format == 'qcow2'
    info = subprocess.run(['qemu-img', 'info', str(image.path)], capture_output=True, text=True).stdout
    assert 'file format: qcow2' in info


@pytest.mark.parametrize('content', [b'hello, not a disk\n', b''])
def test_files_that_are_not_disks_are_refused(cloud, alice, tmp_path, content):
    path = tmp_path / 'notes.txt'
    path.write_bytes(content)
    with pytest.raises(InvalidValue):
        cloud.images.register_file(path, 'notes', alice)
    assert cloud.images.list_all() == []


def test_images_with_a_backing_file_are_refused(cloud, alice, tmp_path, disk):
    overlay = make_disk(tmp_path, 'overlay.qcow2', 'qcow2', '16M', '-b', str(disk), '-F', 'qcow2')
    with pytest.raises(InvalidValue, match='backing file'):
        cloud.images.register_file(overlay, 'overlay', alice)
    assert cloud.images.list_all() == [] and repository_files(cloud) == []


def test_missing_files_and_directories_are_refused(cloud, alice, tmp_path):
    for path in (tmp_path / 'absent.qcow2', tmp_path):
        with pytest.raises(InvalidValue, match='not a file'):
            cloud.images.register_file(path, 'nothing', alice)


def test_a_failed_copy_leaves_nothing_behind(cloud, alice, disk, monkeypatch):
    def broken_copy(source, target):
        target.write_bytes(b'partial')
        raise OSError('disk full')
    monkeypatch.setattr('backend.images._copy', broken_copy)
    with pytest.raises(OSError):
        cloud.images.register_file(disk, 'doomed', alice)
    assert cloud.images.list_all() == []
    assert repository_files(cloud) == []
    monkeypatch.undo()
    assert cloud.images.register_file(disk, 'doomed', alice).state == 'available'  # the name is free


def test_names_are_checked_and_unique_per_owner(cloud, alice, bob, disk):
    cloud.images.register_file(disk, 'base', alice)
    with pytest.raises(Conflict) as raised:
        cloud.images.register_file(disk, 'base', alice)
    assert raised.value.code == 'InvalidAMIName.Duplicate'
    assert cloud.images.register_file(disk, 'base', bob).owner == bob
    for bad in ('ab', 'x' * 129, 'semi;colon'):
        with pytest.raises(InvalidValue) as raised:
            cloud.images.register_file(disk, bad, alice)
        assert raised.value.code == 'InvalidAMIName.Malformed'


def test_kernels_and_ramdisks_are_copied_as_they_are(cloud, alice, tmp_path, disk):
    (tmp_path / 'vmlinuz').write_bytes(b'\x7fELF kernel bytes')
    (tmp_path / 'initrd').write_bytes(b'ramdisk bytes')
    kernel = cloud.images.register_file(tmp_path / 'vmlinuz', 'kernel', alice, image_type='kernel')
    ramdisk = cloud.images.register_file(tmp_path / 'initrd', 'ramdisk', alice, image_type='ramdisk')
    assert re.fullmatch(r'aki-[0-9a-f]{17}', kernel.image_id)
    assert re.fullmatch(r'ari-[0-9a-f]{17}', ramdisk.image_id)
    assert kernel.path.read_bytes() == b'\x7fELF kernel bytes'
    assert (kernel.size_bytes, kernel.root_device_name) == (17, None)
    machine = cloud.images.register_file(disk, 'paravirtual', alice, kernel_id=kernel.image_id,
                                         ramdisk_id=ramdisk.image_id)
    assert (machine.kernel_id, machine.ramdisk_id) == (kernel.image_id, ramdisk.image_id)


def test_kernel_references_are_checked(cloud, alice, bob, tmp_path, disk):
    (tmp_path / 'vmlinuz').write_bytes(b'kernel')
    kernel = cloud.images.register_file(tmp_path / 'vmlinuz', 'kernel', bob, image_type='kernel')
    with pytest.raises(NotFound):  # bob's private kernel is invisible to alice
        cloud.images.register_file(disk, 'pv image', alice, kernel_id=kernel.image_id)
    with pytest.raises(InvalidValue, match='not an available ramdisk'):  # a ramdisk slot needs a ramdisk
        cloud.images.register_file(disk, 'pv image', bob, ramdisk_id=kernel.image_id)
    with pytest.raises(InvalidValue):
        cloud.images.register_file(tmp_path / 'vmlinuz', 'k2', bob, image_type='kernel',
                                   kernel_id=kernel.image_id)
    with pytest.raises(InvalidValue):
        cloud.images.register_file(disk, 'weird', bob, image_type='floppy')


# --- visibility -----------------------------------------------------------------------------------

@pytest.fixture
def world(cloud, alice, bob, disk):
    """Alice's private and public images, Bob's private, public and shared-with-Alice ones, and
    Carol, who owns nothing."""
    carol = cloud.users.create('carol').account_id
    register = cloud.images.register_file
    images = {
        'alice-private': register(disk, 'alice private', alice),
        'alice-public': register(disk, 'alice public', alice, public=True),
        'bob-private': register(disk, 'bob private', bob),
        'bob-public': register(disk, 'bob public', bob, public=True),
        'bob-shared': register(disk, 'bob shared', bob),
    }
    with cloud.db.write() as session:
        session.add(LaunchPermission(image_id=images['bob-shared'].image_id, account_id=alice))
        session.add(LaunchPermission(image_id=images['alice-private'].image_id, account_id=carol))
    return {'alice': alice, 'bob': bob, 'carol': carol, **images}


def names(images, world):
    by_id = {image.image_id: key for key, image in world.items() if hasattr(image, 'image_id')}
    return sorted(by_id[image.image_id] for image in images)


def test_visible_images_are_own_public_and_shared(cloud, world):
    assert names(cloud.images.describe(world['alice']), world) == [
        'alice-private', 'alice-public', 'bob-public', 'bob-shared']
    assert names(cloud.images.describe(world['carol']), world) == [
        'alice-private', 'alice-public', 'bob-public']


def test_owners_filter(cloud, world):
    alice, bob = world['alice'], world['bob']
    assert names(cloud.images.describe(alice, owners=['self']), world) == ['alice-private', 'alice-public']
    assert names(cloud.images.describe(alice, owners=[bob]), world) == ['bob-public', 'bob-shared']
    assert names(cloud.images.describe(alice, owners=['self', bob]), world) == [
        'alice-private', 'alice-public', 'bob-public', 'bob-shared']
    assert cloud.images.describe(alice, owners=['amazon', 'aws-marketplace']) == []
    with pytest.raises(InvalidValue):
        cloud.images.describe(alice, owners=['not-an-account'])


def test_executable_by_filter(cloud, world):
    alice, carol = world['alice'], world['carol']
    assert names(cloud.images.describe(alice, executable_by=['all']), world) == ['alice-public', 'bob-public']
    assert names(cloud.images.describe(alice, executable_by=['self']), world) == [
        'alice-private', 'alice-public', 'bob-shared']
    assert names(cloud.images.describe(alice, executable_by=[alice]), world) == [
        'alice-private', 'alice-public', 'bob-shared']
    assert names(cloud.images.describe(alice, executable_by=[carol]), world) == ['alice-private']
    assert names(cloud.images.describe(carol, executable_by=['self']), world) == ['alice-private']
    assert names(cloud.images.describe(alice, executable_by=['all'], owners=['self']), world) == [
        'alice-public']


def test_explicit_ids_must_be_visible(cloud, world):
    alice = world['alice']
    wanted = [world['bob-shared'].image_id, world['alice-private'].image_id]
    assert names(cloud.images.describe(alice, image_ids=wanted), world) == ['alice-private', 'bob-shared']
    with pytest.raises(NotFound) as raised:
        cloud.images.describe(alice, image_ids=[world['alice-public'].image_id, world['bob-private'].image_id])
    assert raised.value.code == 'InvalidAMIID.NotFound'
    assert world['bob-private'].image_id in raised.value.message
    with pytest.raises(NotFound):
        cloud.images.describe(alice, image_ids=['ami-0123456789abcdef0'])
    with pytest.raises(InvalidValue) as raised:
        cloud.images.describe(alice, image_ids=['i-12345678'])
    assert raised.value.code == 'InvalidAMIID.Malformed'


def test_deregistered_images_disappear_but_the_admin_sees_them(cloud, world):
    with cloud.db.write() as session:
        session.get(ImageRow, world['alice-public'].image_id).state = 'deregistered'
    assert names(cloud.images.describe(world['carol']), world) == ['alice-private', 'bob-public']
    with pytest.raises(NotFound):
        cloud.images.describe(world['alice'], image_ids=[world['alice-public'].image_id])
    assert len(cloud.images.list_all()) == 5


def test_repository_is_private(cloud, alice, disk):
    cloud.images.register_file(disk, 'base', alice)
    assert os.stat(cloud.images.repository.directory).st_mode & 0o077 == 0
