"""Stopped instances move too, on simulated hosts: evacuation takes them along (they stay stopped,
on their new host), StartInstances of one whose host is disabled or unreachable starts it on
another host once its disks are there, or refuses with the scheduler's reasons; failed and
interrupted moves leave exactly one copy. Moves between hosts that keep disks in storage pools
are tested on the driver, as in test_host_storage."""
import dataclasses
import subprocess

import pytest
from sqlalchemy import select

from backend.drivers import open_driver
from backend.drivers.base import DiskImage, DomainState, DriverError, VolumeDisk
from backend.drivers.instance_files import InstanceFiles
from backend.drivers.libvirt_host import HostError
from backend.errors import BackendError
from backend.models import Instance as InstanceRow
from tests.unit.test_capacity_properties import assert_capacity_is_consistent
from tests.unit.test_host_storage import instance_volumes, launch, pool_hosts  # noqa: F401 (a fixture)
from tests.unit.test_migration import domains


@pytest.fixture
def setup(launched):
    """Two instances, one on each of two of three hosts; the first stopped."""
    cloud, worker, owner, ids = launched(hosts=3, cpus=2, memory_mib=1024, count=2)
    cloud.instances.stop(owner, [ids[0]])
    worker.dispatch(wait=True)
    return cloud, worker, owner, ids


def record(cloud, owner, instance_id):
    (found,) = cloud.instances.describe(owner, ids=[instance_id])
    return found


def internal_state(cloud, instance_id):
    with cloud.db.read() as session:
        return session.get(InstanceRow, instance_id).state


def hosts(cloud):
    return {host.name: host for host in cloud.hosts.list()}


def on_host(cloud, host_id):
    """The instances that have the host as theirs, whatever their state (terminated ones aside)."""
    with cloud.db.read() as session:
        return session.scalars(select(InstanceRow.instance_id).where(
            InstanceRow.host_id == host_id, InstanceRow.state != 'terminated')).all()


def test_evacuation_moves_stopped_instances_and_they_stay_stopped(setup):
    cloud, worker, owner, (stopped, running) = setup
    source = record(cloud, owner, stopped).host_name
    used_before = {name: host.used_cpus for name, host in hosts(cloud).items()}
    moves = {move.instance_id: move for move in cloud.migrations.evacuate(source)}
    assert moves[stopped].outcome == 'moving' and not moves[stopped].live
    # Moving, it is still stopped for EC2 and holds no capacity anywhere.
    assert internal_state(cloud, stopped) == 'relocating' and record(cloud, owner, stopped).state == 'relocating'
    assert {name: host.used_cpus for name, host in hosts(cloud).items()} == used_before
    worker.dispatch(wait=True)
    shown = record(cloud, owner, stopped)
    assert shown.state == 'stopped' and shown.host_name == moves[stopped].target != source
    assert list(domains(worker, stopped)) == [hosts(cloud)[shown.host_name].host_id]
    assert not hosts(cloud)[source].enabled and not on_host(cloud, hosts(cloud)[source].host_id)
    assert_capacity_is_consistent(cloud)
    # It starts where it went.
    cloud.instances.start(owner, [stopped])
    worker.dispatch(wait=True)
    assert (record(cloud, owner, stopped).state, record(cloud, owner, stopped).host_name) == \
        ('running', shown.host_name)
    assert record(cloud, owner, running).state == 'running'


def test_starting_an_instance_whose_host_is_disabled_moves_it_first(setup):
    cloud, worker, owner, (stopped, _running) = setup
    source = record(cloud, owner, stopped).host_name
    cloud.hosts.set_enabled(source, False)
    (change,) = cloud.instances.start(owner, [stopped])
    assert change.current_state == 'moving-to-start'
    shown = record(cloud, owner, stopped)
    assert shown.ec2_state[0] == 'pending' and shown.state_reason_code == 'Server.Migrating'
    # It holds its room on the host it goes to, none on its disabled host.
    with cloud.db.read() as session:
        target = session.get(InstanceRow, stopped).migration_host_id
    assert hosts(cloud)[source].used_cpus == 0
    target_host = next(host for host in hosts(cloud).values() if host.host_id == target)
    assert target_host.used_cpus >= 1
    assert stopped in [held.instance_id for held in cloud.pool.host_instances(target_host.name)]
    assert stopped not in [held.instance_id for held in cloud.pool.host_instances(source)]
    assert_capacity_is_consistent(cloud)
    worker.dispatch(wait=True)          # the disks move
    worker.dispatch(wait=True)          # it starts there
    shown = record(cloud, owner, stopped)
    assert (shown.state, shown.state_reason_code) == ('running', None) and shown.host_name != source
    assert list(domains(worker, stopped).values()) == [DomainState.RUNNING]
    assert hosts(cloud)[shown.host_name].host_id == target
    assert_capacity_is_consistent(cloud)


def test_starting_with_no_other_host_with_room_is_refused_and_changes_nothing(launched):
    cloud, worker, owner, (stopped, _other) = launched(hosts=2, cpus=1, memory_mib=2048, count=2)
    cloud.instances.stop(owner, [stopped])
    worker.dispatch(wait=True)
    source = record(cloud, owner, stopped).host_name
    cloud.hosts.set_enabled(source, False)
    with pytest.raises(BackendError) as refused:
        cloud.instances.start(owner, [stopped])
    assert refused.value.code == 'InsufficientInstanceCapacity'
    assert 'not enough free cpu' in refused.value.message and 'disabled' in refused.value.message
    shown = record(cloud, owner, stopped)
    assert (shown.state, shown.host_name) == ('stopped', source)
    assert_capacity_is_consistent(cloud)
    # Administrators see the refused start among the placement failures, as a refused launch.
    (failure,) = cloud.placement_failures.recent()
    assert (failure.owner, failure.instance_type, failure.zone, failure.count, failure.reason) == (
        owner, shown.instance_type, shown.zone, 1, refused.value.message)
    # Enabled again, it starts where it is.
    cloud.hosts.set_enabled(source, True)
    cloud.instances.start(owner, [stopped])
    worker.dispatch(wait=True)
    assert (record(cloud, owner, stopped).state, record(cloud, owner, stopped).host_name) == ('running', source)


def lose(worker, host_id):
    """The host stops answering (its URI leads nowhere), as in test_fencing."""
    worker.hosts.forget(host_id)
    worker._owned[host_id] = 'test:///nonexistent/node.xml'


def test_an_unreachable_host_s_stopped_instance_starts_elsewhere_and_its_old_domain_goes(setup):
    cloud, worker, owner, (stopped, _running) = setup
    source = record(cloud, owner, stopped).host_name
    source_id = hosts(cloud)[source].host_id
    real_uri = worker._owned[source_id]
    lose(worker, source_id)
    worker.monitor.run_round()
    assert hosts(cloud)[source].state == 'unreachable' and hosts(cloud)[source].enabled
    cloud.instances.start(owner, [stopped])
    worker.dispatch(wait=True)
    worker.dispatch(wait=True)
    shown = record(cloud, owner, stopped)
    assert shown.state == 'running' and shown.host_name != source
    # The host answers again with the old, stopped definition: it goes, the instance's files stay.
    worker._owned[source_id] = real_uri
    came_back = worker.hosts.get(source_id, real_uri)
    came_back.deploy(worker.launch_spec(source_id, came_back, stopped))
    came_back.power_off(stopped)
    worker.monitor.run_round()
    assert came_back.state(stopped) is None
    assert worker.files.directory(stopped).exists()
    assert list(domains(worker, stopped).values()) == [DomainState.RUNNING]
    assert_capacity_is_consistent(cloud)


def test_a_failed_move_leaves_a_stopped_instance_where_it_was(setup):
    cloud, worker, owner, (stopped, _running) = setup
    source = record(cloud, owner, stopped).host_name
    cloud.hosts.set_enabled(source, False)
    cloud.instances.start(owner, [stopped])
    with cloud.db.read() as session:
        target_id = session.get(InstanceRow, stopped).migration_host_id

    def refuse(*_):
        raise HostError('the target host refused the domain')
    worker.driver_of(target_id).host.define = refuse
    worker.dispatch(wait=True)
    shown = record(cloud, owner, stopped)
    assert (shown.state, shown.host_name, shown.state_reason_code) == ('stopped', source, 'Server.MigrationFailed')
    assert 'refused the domain' in shown.state_reason_message
    assert list(domains(worker, stopped)) == [hosts(cloud)[source].host_id]
    assert sum(host.used_cpus for host in hosts(cloud).values()) == 1        # the running one only
    assert_capacity_is_consistent(cloud)


@pytest.mark.parametrize('crash', ['after the target defined it', 'after the source removed it'])
def test_a_stopped_move_a_crash_interrupted_is_finished(setup, crash):
    cloud, worker, owner, (stopped, _running) = setup
    source = record(cloud, owner, stopped).host_name
    (move,) = [m for m in cloud.migrations.evacuate(source) if m.instance_id == stopped]
    source_driver = worker.driver_of(hosts(cloud)[source].host_id)
    target_driver = worker.driver_of(hosts(cloud)[move.target].host_id)
    # The worker died part way: the target has the domain, the source still has it or not.
    target_driver.host.define(source_driver.host.definition(stopped))
    if crash == 'after the source removed it':
        source_driver.host.remove(stopped)
    worker.dispatch(wait=True)
    shown = record(cloud, owner, stopped)
    assert (shown.state, shown.host_name) == ('stopped', move.target)
    assert list(domains(worker, stopped)) == [hosts(cloud)[move.target].host_id]


def test_a_stopped_instance_can_be_started_while_its_evacuation_runs(setup):
    cloud, worker, owner, (stopped, _running) = setup
    source = record(cloud, owner, stopped).host_name
    (move,) = [m for m in cloud.migrations.evacuate(source) if m.instance_id == stopped]
    (change,) = cloud.instances.start(owner, [stopped])
    assert (change.previous_state, change.current_state) == ('relocating', 'moving-to-start')
    assert hosts(cloud)[move.target].used_cpus >= 1
    with pytest.raises(BackendError, match='moving to another host'):
        cloud.instances.terminate(owner, [stopped])
    worker.dispatch(wait=True)
    worker.dispatch(wait=True)
    assert (record(cloud, owner, stopped).state, record(cloud, owner, stopped).host_name) == ('running', move.target)
    assert_capacity_is_consistent(cloud)


def test_a_host_cannot_be_removed_while_a_stopped_instance_moves_to_it(setup):
    cloud, _worker, owner, (stopped, _running) = setup
    (move,) = cloud.migrations.migrate([stopped])
    with pytest.raises(BackendError, match='still has 1 instance'):
        cloud.hosts.remove(move.target)


# -- on the driver: hosts that keep disks in storage pools ------------------------------------------

@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'root.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '16M'], check=True)
    return DiskImage(str(path), 'qcow2')


def stopped_on(driver, spec):
    driver.deploy(spec)
    driver.storage.prepare(spec)        # what a simulated host skips
    driver.power_off(spec.instance_id)


def test_a_stopped_instance_moves_between_pools_with_its_disk(pool_hosts, image):
    source, target = pool_hosts
    spec = launch('i-5', root=image)
    stopped_on(source, spec)
    assert instance_volumes(source.storage, 'i-5') == {'disk.qcow2', 'context.iso'}
    source.relocate('i-5', target, spec)
    assert source.state('i-5') is None and target.state('i-5') is DomainState.SHUTOFF
    assert instance_volumes(source.storage, 'i-5') == set()
    assert instance_volumes(target.storage, 'i-5') == {'disk.qcow2', 'context.iso'}
    source.relocate('i-5', target, spec)          # repeated after a crash: done
    assert target.state('i-5') is DomainState.SHUTOFF
    target.deploy(spec)
    assert target.state('i-5') is DomainState.RUNNING


def test_what_a_pool_host_cannot_give_stays_there(pool_hosts, image, monkeypatch):
    source, target = pool_hosts
    spec = launch('i-6', root=image)
    stopped_on(source, spec)
    with pytest.raises(DriverError, match='does not answer'):       # its disk is only there
        source.relocate('i-6', target, spec, source_lost=True)

    with pytest.raises(DriverError, match='without shared storage'):   # nor volumes (EBS) in a pool
        source.relocate('i-6', target, dataclasses.replace(spec, volumes=(VolumeDisk('vol-1', '/v', 'vdb'),)))

    def refuse(*_):
        raise HostError('the target refuses')
    monkeypatch.setattr(target.host, 'define', refuse)
    with pytest.raises(DriverError, match='refuses'):
        source.relocate('i-6', target, spec)
    assert source.state('i-6') is DomainState.SHUTOFF and target.state('i-6') is None
    assert instance_volumes(source.storage, 'i-6') == {'disk.qcow2', 'context.iso'}
    assert instance_volumes(target.storage, 'i-6') == set()


def test_no_stopped_move_between_shared_storage_and_a_pool(tmp_path):
    files = InstanceFiles(tmp_path / 'instances')
    local, remote = open_driver('qemu:///system', files), open_driver('qemu+tcp://node1/system', files)
    with pytest.raises(DriverError, match='shared storage'):
        local.relocate('i-1', remote, launch())
