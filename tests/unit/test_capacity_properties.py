"""Capacity bookkeeping follows the lifecycle table: whatever happens to instances, every host's
used capacity is the sum over the instances that hold it, never negative, never above its total."""
import dataclasses
import itertools
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend.errors import BackendError
from backend.instances import LaunchRequest, transition
from backend.lifecycle import HOLDS_CAPACITY, HOLDS_TARGET_CAPACITY, Event, can
from backend.models import Host as HostRow, Instance as InstanceRow

ACCOUNTS = itertools.count(1)      # a fresh account per example
REQUESTS = ('run', 'stop', 'force-stop', 'start', 'reboot', 'terminate', 'migrate', 'evacuate', 'disable-host',
            'enable-host')
# A worker round carries out every instance's due work (or fails a deploy for good); the monitor
# reports a guest that powered off, a host lost and back. Each applies only where the table allows.
WORKER_OUTCOMES = {'pending': Event.DEPLOYED, 'stopping': Event.STOPPED, 'rebooting': Event.REBOOTED,
                   'shutting-down': Event.CLEANED_UP, 'cleaning-up': Event.CLEANED_UP, 'migrating': Event.MIGRATED,
                   'relocating': Event.MIGRATED, 'moving-to-start': Event.MIGRATED}
REPORTS = ('deploy-fails', Event.POWERED_OFF, Event.HOST_LOST, Event.HOST_BACK)

# Each step: what happens, to which instance, how many to launch, and whether a worker round follows.
steps = st.lists(st.tuples(st.sampled_from(REQUESTS + REPORTS), st.integers(0, 3), st.integers(1, 3),
                           st.booleans()), min_size=1, max_size=40)


@pytest.fixture
def world(cloud, tmp_path):
    # Small hosts, so that launches and starts do run out of room.
    cloud.hosts.add_simulated(2, cpus=3, memory_mib=768)
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = cloud.images.register_file(disk, 'tiny', cloud.users.create('owner').account_id,
                                          public=True).image_id
    return cloud, image_id


def assert_capacity_is_consistent(cloud):
    with cloud.db.read() as session:
        for host in session.scalars(select(HostRow)):
            holding = session.scalars(select(InstanceRow).where(
                InstanceRow.host_id == host.id,
                InstanceRow.state.in_([state.value for state in HOLDS_CAPACITY]))).all()
            holding += session.scalars(select(InstanceRow).where(     # moving here
                InstanceRow.migration_host_id == host.id,
                InstanceRow.state.in_([state.value for state in HOLDS_TARGET_CAPACITY]))).all()
            assert host.used_cpus == sum(row.vcpus for row in holding), host.name
            assert host.used_memory_mib == sum(row.memory_mib for row in holding), host.name
            assert 0 <= host.used_cpus <= host.cpus and 0 <= host.used_memory_mib <= host.memory_mib


def request(cloud, owner, image_id, ids, action, index, count):
    service = cloud.instances
    host = f'sim-0000{index % 2 + 1}'
    if action == 'evacuate':                           # running and stopped instances move away
        cloud.migrations.evacuate(host)
        return
    if action in ('disable-host', 'enable-host'):      # starts then go elsewhere, or back
        cloud.hosts.set_enabled(host, action == 'enable-host')
        return
    if action == 'run':
        service.run(owner, LaunchRequest(image_id=image_id, min_count=1, max_count=count,
                                         instance_type='t1.micro' if count != 2 else 'm1.small'))
        return
    if not ids:
        return
    target = [ids[index % len(ids)]]
    {'stop': lambda: service.stop(owner, target), 'force-stop': lambda: service.stop(owner, target, force=True),
     'start': lambda: service.start(owner, target), 'reboot': lambda: service.reboot(owner, target),
     'terminate': lambda: service.terminate(owner, target),
     'migrate': lambda: cloud.migrations.migrate(target)}[action]()


def report(cloud, ids, event, index):
    if not ids:
        return
    with cloud.db.write() as session:
        row = session.get(InstanceRow, ids[index % len(ids)])
        if can(row.state, event):
            transition(session, row, event, reason='reported', reason_code='Server.Test')


def worker_round(cloud, ids, deploy_fails=False):
    with cloud.db.write() as session:
        for row in session.scalars(select(InstanceRow).where(InstanceRow.instance_id.in_(ids))):
            event = WORKER_OUTCOMES.get(row.state)
            if event is Event.DEPLOYED and deploy_fails:
                event = Event.DEPLOY_FAILED
            if event is Event.MIGRATED and deploy_fails:
                event = Event.MIGRATE_FAILED
            if event is not None:
                transition(session, row, event, reason='reported', reason_code='Server.Test')


def step(cloud, owner, image_id, action, index, count):
    ids = [record.instance_id for record in cloud.instances.describe(owner)]
    if action == 'deploy-fails':
        worker_round(cloud, ids, deploy_fails=True)
    elif isinstance(action, Event):
        report(cloud, ids, action, index)
    else:
        request(cloud, owner, image_id, ids, action, index, count)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_any_sequence_of_events_keeps_capacity_consistent(world, steps):
    cloud, image_id = world
    owner = cloud.users.create(f'user-{next(ACCOUNTS)}').account_id
    for action, index, count, worker_after in steps:
        try:
            step(cloud, owner, image_id, action, index, count)
        except BackendError:
            pass        # refused (wrong state, no room): must change nothing
        assert_capacity_is_consistent(cloud)
        if worker_after:
            worker_round(cloud, [record.instance_id for record in cloud.instances.describe(owner)])
            assert_capacity_is_consistent(cloud)
    # Leave the hosts empty for the next example.
    ids = [record.instance_id for record in cloud.instances.describe(owner)]
    for instance_id in ids:
        for event in (Event.MIGRATED, Event.TERMINATE, Event.CLEANED_UP, Event.TERMINATE):
            report(cloud, [instance_id], event, 0)
    for name in ('sim-00001', 'sim-00002'):
        cloud.hosts.set_enabled(name, True)
    assert_capacity_is_consistent(cloud)


def test_run_stop_terminate_frees_capacity_once(world):
    cloud, image_id = world
    owner = cloud.users.create('alice').account_id
    (record,) = cloud.instances.run(owner, LaunchRequest(image_id=image_id, min_count=1, max_count=1,
                                                         instance_type='t1.micro'))
    report(cloud, [record.instance_id], Event.DEPLOYED, 0)
    cloud.instances.stop(owner, [record.instance_id])
    report(cloud, [record.instance_id], Event.STOPPED, 0)
    (change,) = cloud.instances.terminate(owner, [record.instance_id])
    assert change.current_state == 'cleaning-up'          # shown as EC2's shutting-down
    report(cloud, [record.instance_id], Event.CLEANED_UP, 0)
    with cloud.db.read() as session:
        assert [(host.used_cpus, host.used_memory_mib) for host in session.scalars(select(HostRow))] == [(0, 0)] * 2
    assert_capacity_is_consistent(cloud)


def test_starting_needs_room_on_its_host_and_a_refusal_changes_nothing(world):
    cloud, image_id = world
    owner = cloud.users.create('bob').account_id
    launch = LaunchRequest(image_id=image_id, min_count=1, max_count=1, instance_type='t1.micro')
    (first,) = cloud.instances.run(owner, launch)
    report(cloud, [first.instance_id], Event.DEPLOYED, 0)
    cloud.instances.stop(owner, [first.instance_id])
    report(cloud, [first.instance_id], Event.STOPPED, 0)
    with cloud.db.write() as session:      # others fill its host meanwhile
        host = session.get(HostRow, session.get(InstanceRow, first.instance_id).host_id)
        host.used_cpus = host.cpus
    with pytest.raises(BackendError) as refused:
        cloud.instances.start(owner, [first.instance_id])
    assert refused.value.code == 'InsufficientInstanceCapacity'
    assert cloud.instances.describe(owner, ids=[first.instance_id])[0].state == 'stopped'


def test_administrators_pin_to_a_host_only_within_its_capacity(world):
    # Host choice stays a back-end capability for administrators; tenants cannot reach it.
    cloud, image_id = world
    owner = cloud.users.create('carol').account_id
    pinned = LaunchRequest(image_id=image_id, min_count=1, max_count=3, instance_type='t1.micro',
                           host_name='sim-00002')
    records = cloud.instances.run(owner, pinned)
    assert len(records) == 3 and {record.host_name for record in records} == {'sim-00002'}
    with pytest.raises(BackendError) as full:
        cloud.instances.run(owner, pinned)
    assert full.value.code == 'InsufficientInstanceCapacity'
    with pytest.raises(BackendError) as unknown:
        cloud.instances.run(owner, dataclasses.replace(pinned, host_name='sim-09999'))
    assert unknown.value.code == 'InvalidHostID.NotFound'
    assert len(cloud.instances.describe(owner)) == 3
    assert_capacity_is_consistent(cloud)
