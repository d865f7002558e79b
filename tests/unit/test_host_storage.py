"""Where hosts read instances' disks (`host_storage`): this machine's files, or the installation's
storage pool on the host. libvirt's test driver keeps pools and volumes (backing stores included)
but has no upload or download streams: what needs them is proven by the real-VM migration test."""
import secrets

import pytest
from lxml import etree

from backend.drivers import open_driver
from backend.drivers import host_storage
from backend.drivers.base import DiskImage, DomainState, DriverError, LaunchSpec, VolumeDisk
from backend.drivers.host_storage import LocalStorage, PoolStorage, _content_digest, volume_xml
from backend.drivers.instance_files import InstanceFiles
from backend.drivers.libvirt_host import HostError, LibvirtHost
from backend.host_names import HostNames


def launch(instance_id='i-0123456789abcdef0', **changes):
    values = dict(instance_id=instance_id, image_id='ami-0123456789abcdef0', instance_type='t1.micro', vcpus=1,
                  memory_mib=128, zone='reservoir-1a', root=None)
    values.update(changes)
    return LaunchSpec(**values)


@pytest.fixture
def pool():
    """A PoolStorage on test:///default (one host per process), of an installation of its own."""
    host = LibvirtHost('test:///default')
    yield PoolStorage(host, HostNames('p' + secrets.token_hex(1)))
    host.close()


def names_in(storage):
    def listed(connection):
        return {volume.name() for volume in storage.pool(connection).listAllVolumes()}
    return storage.host.call(listed)


def test_the_installation_pool_is_made_once_where_every_host_has_it(pool):
    first = pool.host.call(pool.pool)
    again = pool.host.call(pool.pool)
    assert first.name() == again.name() == f'{pool.names.prefix}-instances'
    assert first.isActive() == 1 and first.autostart() == 1
    path = etree.fromstring(first.XMLDesc(0)).findtext('./target/path')
    assert path == pool.directory == f'/var/lib/libvirt/{pool.names.prefix}-instances'


def test_an_overlay_is_a_volume_backed_by_its_base_and_made_once(pool):
    base = pool.path('base-0123.qcow2')
    made = pool.overlay('i-1', base, 'qcow2', 64 << 20)
    assert made == pool.path(f'{pool.names.prefix}-i-1-disk.qcow2')
    assert pool.overlay('i-1', base, 'qcow2', 1) == made          # the guest's data is kept

    def described(connection):
        return storage_xml(storage_volume(connection, pool, f'{pool.names.prefix}-i-1-disk.qcow2'))
    volume = pool.host.call(described)
    assert volume.findtext('./capacity') == str(64 << 20)
    assert volume.find('./target/format').get('type') == 'qcow2'
    assert volume.findtext('./backingStore/path') == base
    assert volume.find('./backingStore/format').get('type') == 'qcow2'


def test_a_base_already_on_the_host_is_not_uploaded_again(pool, tmp_path):
    image = tmp_path / 'root.qcow2'
    image.write_bytes(b'an image')
    name = f'base-{_content_digest(image)}.qcow2'
    pool._create(volume_xml(name, 8, 'raw'))
    assert pool.base(DiskImage(str(image), 'qcow2')) == pool.path(name)      # no stream needed
    image.write_bytes(b'a changed image')
    assert _content_digest(image) not in name                     # a changed image is a new volume


def test_removing_an_instance_deletes_its_volumes_and_keeps_the_bases(pool):
    pool._create(volume_xml('base-0123.qcow2', 8, 'raw'))
    for instance_id in ('i-1', 'i-2'):
        pool.overlay(instance_id, pool.path('base-0123.qcow2'), 'qcow2', 1 << 20)
        for what in ('context.iso', 'console.log', 'migration.save'):
            pool._create(volume_xml(pool.volume_name(instance_id, what), 0, 'raw'))
    pool.remove('i-1')
    pool.remove('i-1')                                              # nothing left: not an error
    prefix = pool.names.prefix
    assert names_in(pool) == {'base-0123.qcow2', f'{prefix}-i-2-disk.qcow2', f'{prefix}-i-2-context.iso',
                              f'{prefix}-i-2-console.log', f'{prefix}-i-2-migration.save'}
    pool.release('i-2')                                             # moved away: nothing of it stays
    assert names_in(pool) == {'base-0123.qcow2'}
    assert pool.console_output('i-2') == b''                        # no console yet: empty, as locally


def test_volumes_are_refused_on_a_host_without_shared_storage(pool):
    disk = VolumeDisk('vol-0123456789abcdef0', '/x/vol.qcow2', 'vdf')
    with pytest.raises(DriverError, match='shared storage'):
        pool.prepare(launch(volumes=(disk,)))


def test_the_uri_and_shared_storage_choose_where_disks_go(tmp_path):
    files = InstanceFiles(tmp_path / 'instances')
    kinds = {uri: type(open_driver(uri, files).storage) for uri in (
        'qemu:///system', 'qemu:///embed?root=/x', f'test://{tmp_path}/node.xml',
        'qemu+ssh://root@node1/system', 'qemu+tcp://node1/system', 'qemu+unix:///system?socket=/s')}
    assert kinds == {'qemu:///system': LocalStorage, 'qemu:///embed?root=/x': LocalStorage,
                     f'test://{tmp_path}/node.xml': LocalStorage, 'qemu+ssh://root@node1/system': PoolStorage,
                     'qemu+tcp://node1/system': PoolStorage, 'qemu+unix:///system?socket=/s': PoolStorage}
    shared = open_driver('qemu+ssh://root@node1/system', files, shared_storage='/mnt/cloud').storage
    assert isinstance(shared, LocalStorage)


def test_a_host_with_shared_storage_is_given_this_machines_files_at_its_path(tmp_path):
    files = InstanceFiles(tmp_path / 'state' / 'instances')
    image = tmp_path / 'state' / 'images' / 'root.raw'
    image.parent.mkdir(parents=True)
    image.write_bytes(b'\0' * 512)
    placed = LocalStorage(files, '/mnt/cloud').prepare(launch(root=DiskImage(str(image), 'raw')))
    assert placed.disk == '/mnt/cloud/instances/i-0123456789abcdef0/disk.qcow2'
    assert placed.backing == '/mnt/cloud/images/root.raw'
    assert placed.context_iso == '/mnt/cloud/instances/i-0123456789abcdef0/context.iso'
    assert placed.console_log == '/mnt/cloud/instances/i-0123456789abcdef0/console.log'
    assert files.disk('i-0123456789abcdef0').exists()                # made here, read there


def test_no_move_between_a_host_with_shared_storage_and_one_without(tmp_path):
    files = InstanceFiles(tmp_path / 'instances')
    local = open_driver('qemu:///system', files)
    remote = open_driver('qemu+tcp://node1/system', files)
    with pytest.raises(DriverError, match='shared storage'):
        local.migrate('i-1', remote, True, launch())


def storage_volume(connection, storage, name):
    return storage.pool(connection).storageVolLookupByName(name)


def storage_xml(volume):
    return etree.fromstring(volume.XMLDesc(0))


@pytest.fixture
def pool_hosts(tmp_path, monkeypatch):
    """Two simulated hosts whose disks live in pools (libvirt's test driver saves and restores a
    guest for real, but has no streams: a volume copied or uploaded is made empty)."""
    monkeypatch.setattr(host_storage, 'POOL_ROOT', str(tmp_path / 'pools'))
    monkeypatch.setattr(PoolStorage, 'upload', lambda storage, name, source, size: storage._create(
        volume_xml(name, size, 'raw')).path())
    monkeypatch.setattr(PoolStorage, 'copy_to', lambda storage, target, name: target.upload(name, None, 0))
    node = tmp_path / 'node.xml'
    node.write_text('<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>'
                    '<mhz>2000</mhz><model>x86_64</model></cpu><memory>4194304</memory></node>\n')
    names = HostNames('pm' + secrets.token_hex(1))
    hosts = [open_driver(f'test://{node}', InstanceFiles(tmp_path / 'instances'), names=names) for _ in 'ab']
    for driver in hosts:
        driver.storage = PoolStorage(driver.host, names)
    (tmp_path / 'pools' / names.storage_pool).mkdir(parents=True)     # where the test driver saves a guest
    yield hosts
    for driver in hosts:
        driver.close()


def instance_volumes(storage, instance_id):
    return {name.rsplit('-', 1)[1] for name in names_in(storage) if f'-{instance_id}-' in name}


def test_a_cold_move_between_pools_carries_the_guest_and_leaves_nothing_at_the_source(pool_hosts):
    source, target = pool_hosts
    moving = launch('i-1')
    source.deploy(moving)
    source.storage.prepare(moving)
    assert instance_volumes(source.storage, 'i-1') == {'context.iso'}
    source.migrate('i-1', target, False, moving)
    assert source.state('i-1') is None and target.state('i-1') is DomainState.RUNNING
    assert instance_volumes(source.storage, 'i-1') == set()
    assert instance_volumes(target.storage, 'i-1') == {'context.iso'}     # the saved guest is gone too
    source.migrate('i-1', target, False, moving)                          # repeated after a crash: done
    assert target.state('i-1') is DomainState.RUNNING


def test_a_failed_cold_move_leaves_the_guest_running_where_it_was_and_nothing_at_the_target(pool_hosts,
                                                                                            monkeypatch):
    source, target = pool_hosts
    moving = launch('i-2')
    source.deploy(moving)
    source.storage.prepare(moving)

    def refuse(*arguments):
        raise HostError('the target refuses')
    monkeypatch.setattr(target.host, 'restore', refuse)
    with pytest.raises(DriverError, match='refuses'):
        source.migrate('i-2', target, False, moving)
    assert source.state('i-2') is DomainState.RUNNING and target.state('i-2') is None
    assert instance_volumes(source.storage, 'i-2') == {'context.iso'}
    assert instance_volumes(target.storage, 'i-2') == set()
