"""Fencing on simulated hosts: a host unreachable long enough is fenced by its command; its
instances on shared storage start again elsewhere, the others stay impaired; without a fence command
nothing starts twice; a fenced host that answers again loses the domains that now run elsewhere."""
import datetime
import json

import pytest
from sqlalchemy import update

from backend.models import Host as HostRow

ALWAYS_DUE = datetime.timedelta(0)


@pytest.fixture
def setup(launched):
    cloud, worker, owner, ids = launched(hosts=2, cpus=4, memory_mib=2048, count=2)
    worker.monitor.fencing.after = ALWAYS_DUE
    return cloud, worker, owner, ids


def record(cloud, owner, instance_id):
    (found,) = cloud.instances.describe(owner, ids=[instance_id])
    return found


def host_id_of(cloud, name):
    return next(host.host_id for host in cloud.hosts.list() if host.name == name)


def lose(worker, host_id):
    """The host stops answering (its URI leads nowhere)."""
    worker.hosts.forget(host_id)
    worker._owned[host_id] = 'test:///nonexistent/node.xml'


def fence_with(cloud, name, command, shared_storage=None):
    with cloud.db.write() as session:
        session.execute(update(HostRow).where(HostRow.name == name).values(
            fence_command=command, shared_storage=shared_storage))


def test_a_fenced_host_s_instances_on_shared_storage_start_elsewhere(setup, tmp_path):
    cloud, worker, owner, (first, second) = setup
    lost = record(cloud, owner, first).host_name
    marker = tmp_path / 'fenced'
    fence_with(cloud, lost, f'echo "$RESERVOIR_HOST_NAME" > {marker}', shared_storage='/srv/reservoir')
    lost_id = host_id_of(cloud, lost)
    real_uri = worker._owned[lost_id]
    lose(worker, lost_id)
    worker.monitor.run_round()
    assert marker.read_text().strip() == lost
    shown = record(cloud, owner, first)
    assert shown.state == 'pending' and shown.host_name != lost and shown.state_reason_code == 'Server.Recovered'
    worker.dispatch(wait=True)
    assert record(cloud, owner, first).state == 'running'
    host = next(host for host in cloud.hosts.list() if host.name == lost)
    assert (host.state, host.enabled, host.used_cpus) == ('fenced', False, 0)
    assert sum(h.used_cpus for h in cloud.hosts.list()) == 2        # both instances, on the other host

    # It answers again with the old domain still there: that copy is destroyed, the host stays disabled.
    worker._owned[lost_id] = real_uri
    came_back = worker.hosts.get(lost_id, real_uri)
    came_back.deploy(worker.launch_spec(lost_id, came_back, first))
    worker.monitor.run_round()
    assert came_back.state(first) is None
    host = next(host for host in cloud.hosts.list() if host.name == lost)
    assert host.state == 'ok' and not host.enabled


def test_without_shared_storage_or_a_fence_command_nothing_starts_twice(setup, tmp_path):
    cloud, worker, owner, (first, second) = setup
    fenced_name, unfenced_name = record(cloud, owner, first).host_name, record(cloud, owner, second).host_name
    fence_with(cloud, fenced_name, 'true')                     # fenced, but its disks are its own
    for name in (fenced_name, unfenced_name):
        lose(worker, host_id_of(cloud, name))
    worker.monitor.run_round()
    fenced, unfenced = record(cloud, owner, first), record(cloud, owner, second)
    assert (fenced.state, fenced.host_name, fenced.state_reason_code) == ('impaired', fenced_name, 'Server.HostFenced')
    assert (unfenced.state, unfenced.host_name) == ('impaired', unfenced_name)
    assert {h.name: h.state for h in cloud.hosts.list()} == {fenced_name: 'fenced', unfenced_name: 'unreachable'}


def test_a_failing_fence_command_fences_nothing(setup):
    cloud, worker, owner, (first, _second) = setup
    lost = record(cloud, owner, first).host_name
    fence_with(cloud, lost, 'exit 3', shared_storage='/srv/reservoir')
    lose(worker, host_id_of(cloud, lost))
    worker.monitor.run_round()
    assert record(cloud, owner, first).state == 'impaired'
    assert next(h for h in cloud.hosts.list() if h.name == lost).state == 'unreachable'


def test_the_fence_command_is_set_with_the_cli(tmp_path, monkeypatch, capsys):
    from backend.cli import main
    monkeypatch.setenv('RESERVOIR_HOME', str(tmp_path / 'home'))
    assert main(['host', 'add', '--simulated', '--count', '1', '--cpus', '1', '--memory', '512']) == 0
    capsys.readouterr()
    assert main(['host', 'set-fence', 'sim-00001', 'ipmitool -H bmc1 power off', '--json']) == 0
    assert json.loads(capsys.readouterr().out)[0]['fence_command'] == 'ipmitool -H bmc1 power off'
    assert main(['host', 'set-fence', 'sim-00001', '', '--json']) == 0
    assert json.loads(capsys.readouterr().out)[0]['fence_command'] is None
    assert main(['host', 'set-fence', 'nowhere', 'true']) != 0
