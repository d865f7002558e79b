"""Moving instances between simulated hosts: capacity on both hosts while moving, the domain on
exactly one host at every moment, refusals with reasons, evacuation, and a move a crash interrupted."""

import pytest

from backend.drivers.base import DomainState
from backend.drivers.libvirt_host import HostError
from backend.errors import BackendError
from backend.models import Instance as InstanceRow


@pytest.fixture
def setup(launched):
    return launched(hosts=3, cpus=2, memory_mib=1024, count=2)


def domains(worker, instance_id):
    """{host id: DomainState} of the hosts that have a domain of the instance."""
    found = {}
    for host_id, uri in worker.owned_hosts().items():
        state = worker.hosts.get(host_id, uri).state(instance_id)
        if state is not None:
            found[host_id] = state
    return found


def used(cloud):
    return {host.name: host.used_cpus for host in cloud.hosts.list()}


def record(cloud, owner, instance_id):
    (found,) = cloud.instances.describe(owner, ids=[instance_id])
    return found


def test_a_move_holds_both_hosts_then_runs_on_the_target_only(setup):
    cloud, worker, owner, (first, _second) = setup
    source = record(cloud, owner, first).host_name
    (move,) = cloud.migrations.migrate([first], live=False)
    assert move.outcome == 'moving' and move.target not in (None, source)
    # Moving: EC2 sees it running, with the reason; capacity is held on both hosts.
    shown = record(cloud, owner, first)
    assert shown.state == 'migrating' and shown.state_reason_code == 'Server.Migrating'
    assert used(cloud)[move.target] >= 1 and used(cloud)[source] >= 1
    before = sum(used(cloud).values())
    worker.dispatch(wait=True)
    shown = record(cloud, owner, first)
    assert (shown.state, shown.host_name, shown.state_reason_code) == ('running', move.target, None)
    assert list(domains(worker, first).values()) == [DomainState.RUNNING]
    assert sum(used(cloud).values()) == before - 1          # the source's share was given back
    with cloud.db.read() as session:
        assert session.get(InstanceRow, first).migration_host_id is None


def test_moves_that_cannot_be_done_say_why(setup):
    cloud, worker, owner, (first, second) = setup
    source = record(cloud, owner, first).host_name
    assert cloud.migrations.migrate([first], host_name=source)[0].outcome.startswith('Insufficient capacity')
    assert "no host is named 'nowhere'" in cloud.migrations.migrate([first], host_name='nowhere')[0].outcome
    cloud.instances.terminate(owner, [second])
    worker.dispatch(wait=True)
    assert cloud.migrations.migrate([second])[0].outcome == 'neither running nor stopped (terminated)'
    # While it moves, stop and terminate wait for the move to end.
    cloud.migrations.migrate([first])
    with pytest.raises(BackendError, match='moving to another host'):
        cloud.instances.terminate(owner, [first])


def test_a_failed_move_leaves_it_running_where_it_was(setup):
    cloud, worker, owner, (first, _second) = setup
    source = record(cloud, owner, first).host_name
    (move,) = cloud.migrations.migrate([first])
    target_id = next(host.host_id for host in cloud.hosts.list() if host.name == move.target)

    def refuse(*_):
        raise HostError('the target host refused the guest')
    worker.driver_of(target_id).host.restore = refuse
    worker.dispatch(wait=True)
    shown = record(cloud, owner, first)
    assert (shown.state, shown.host_name, shown.state_reason_code) == ('running', source, 'Server.MigrationFailed')
    assert used(cloud)[move.target] == 0
    assert list(domains(worker, first).values()) == [DomainState.RUNNING]


def test_a_move_interrupted_after_the_restore_is_finished_not_repeated(setup):
    cloud, worker, owner, (first, _second) = setup
    (move,) = cloud.migrations.migrate([first], live=False)
    hosts = {host.name: host.host_id for host in cloud.hosts.list()}
    source = worker.driver_of(hosts[record(cloud, owner, first).host_name])
    target = worker.driver_of(hosts[move.target])
    # The crash came after the target started the guest, before the source forgot its copy.
    saved = source.files.directory(first) / 'x.save'
    source.host.save(first, str(saved))
    target.host.restore(str(saved), None, source.host.definition(first))
    worker.dispatch(wait=True)
    assert record(cloud, owner, first).host_name == move.target
    assert list(domains(worker, first).values()) == [DomainState.RUNNING]


def test_evacuate_empties_a_host_and_disables_it(setup):
    cloud, worker, owner, ids = setup
    crowded = record(cloud, owner, ids[0]).host_name
    moves = cloud.migrations.evacuate(crowded)
    assert moves and all(move.outcome == 'moving' for move in moves)
    worker.dispatch(wait=True)
    assert all(record(cloud, owner, i).host_name != crowded for i in ids)
    (host,) = [host for host in cloud.hosts.list() if host.name == crowded]
    assert not host.enabled and host.used_cpus == 0
