"""The monitor against simulated hosts: vanished domains, guest shutdowns, unreachable hosts."""
import time

import pytest

import backend.worker


@pytest.fixture
def setup(launched):
    return launched(hosts=2, cpus=4, memory_mib=2048, count=2)


def states(cloud, owner):
    return {i.instance_id: (i.state, i.state_reason_code) for i in cloud.instances.describe(owner)}


def host_of(cloud, worker, owner, instance_id):
    [record] = cloud.instances.describe(owner, ids=[instance_id])
    host_id = next(h.host_id for h in cloud.hosts.list() if h.name == record.host_name)
    return worker.hosts.get(host_id, worker._owned[host_id])


def test_guest_shutdown_and_vanished_domain_become_stopped_with_reasons(setup):
    cloud, worker, owner, (first, second) = setup
    host_of(cloud, worker, owner, first).power_off(first)       # as if the guest powered itself off
    host_of(cloud, worker, owner, second).destroy(second)       # the domain is gone altogether
    worker.monitor.run_round()
    found = states(cloud, owner)
    assert found[first] == ('stopped', 'Client.InstanceInitiatedShutdown')
    assert found[second] == ('stopped', 'Server.InternalError')
    assert sum(host.used_cpus for host in cloud.hosts.list()) == 0


def test_unreachable_host_impairs_instances_and_they_recover(setup):
    cloud, worker, owner, ids = setup
    for host_id in list(worker._owned):
        worker.hosts.get(host_id, worker._owned[host_id]).close()
    real_uris = dict(worker._owned)
    worker._owned = {host_id: 'test:///nonexistent/node.xml' for host_id in real_uris}
    worker.hosts._hosts.clear()
    worker.monitor.run_round()
    assert {state for state, _ in states(cloud, owner).values()} == {'impaired'}
    assert {h.state for h in cloud.hosts.list()} == {'unreachable'}
    worker._owned = real_uris                                   # the hosts answer again
    worker.monitor.run_round()                                  # (re-opened: domains autostart)
    assert {state for state, _ in states(cloud, owner).values()} == {'running'}


def test_a_forced_stop_powers_off_without_asking_the_guest(setup):
    cloud, worker, owner, (first, second) = setup
    host = host_of(cloud, worker, owner, first)
    asked = []
    original = host.shutdown
    host.shutdown = lambda name: asked.append(name) or original(name)
    cloud.instances.stop(owner, [first], force=True)
    cloud.instances.stop(owner, [second])
    worker.dispatch(wait=True)
    found = states(cloud, owner)
    assert found[first][0] == 'stopped' and found[second][0] == 'stopped'
    assert first not in asked


def test_a_guest_shutdown_terminates_when_the_instance_says_so(setup):
    cloud, worker, owner, (first, second) = setup
    cloud.instances.modify(owner, first, shutdown_behavior='terminate')
    for instance_id in (first, second):
        host_of(cloud, worker, owner, instance_id).power_off(instance_id)
    worker.monitor.run_round()
    found = states(cloud, owner)
    assert found[first][0] == 'cleaning-up', 'InstanceInitiatedShutdownBehavior=terminate'
    assert found[second] == ('stopped', 'Client.InstanceInitiatedShutdown')
    while worker.dispatch(wait=True):
        pass
    assert states(cloud, owner)[first][0] == 'terminated'


def test_work_a_host_holds_too_long_is_named_once_in_the_log(setup, caplog, monkeypatch):
    _cloud, worker, _owner, (first, _second) = setup
    monkeypatch.setattr(backend.worker, 'SLOW_WORK_SECONDS', 0.05)
    assert worker.claim_instance(first)
    worker.report_slow_work()
    assert not [r for r in caplog.records if first in r.getMessage()]
    time.sleep(0.1)
    worker.report_slow_work()
    worker.report_slow_work()
    assert len([r for r in caplog.records if first in r.getMessage()]) == 1
    worker.release_instance(first)
