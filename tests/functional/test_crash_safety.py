"""SIGKILL in the middle of a 100-instance launch, then a restart: every instance ends running (or
failed with a reason) and no capacity or address lease is leaked."""
import subprocess
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from tests.support.server import LiveServer

pytestmark = pytest.mark.clients


def launch_in_background(ec2, image_id):
    outcome = {}

    def launch():
        try:
            outcome['reply'] = ec2.run_instances(ImageId=image_id, MinCount=100, MaxCount=100,
                                                 InstanceType='t1.micro')
        except Exception as error:   # the connection dies with the server
            outcome['error'] = error
    thread = threading.Thread(target=launch)
    thread.start()
    return thread, outcome


def database_facts(home):
    engine = create_engine(f'sqlite:///{home}/reservoir.db')
    with engine.connect() as connection:
        instances = connection.execute(text(
            'SELECT instance_id, state, state_reason_code, host_id, vcpus, memory_mib FROM instances')).all()
        hosts = connection.execute(text('SELECT id, used_cpus, used_memory_mib FROM hosts')).all()
        leases = connection.execute(text('SELECT i.instance_id FROM leases l JOIN network_interfaces i '
                                         'ON i.interface_id = l.interface_id')).scalars().all()
    engine.dispose()
    return instances, hosts, leases


def wait_settled(home, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instances, _, _ = database_facts(home)
        if all(state in ('running', 'failed') for _, state, *_ in instances):
            return instances
        time.sleep(0.3)
    raise AssertionError(f'instances still in flight: {[i for i in instances if i[1] not in ("running", "failed")]}')


@pytest.mark.parametrize('kill_after', [0.05, 0.25, 0.6])
def test_kill_during_a_100_instance_launch_and_restart(tmp_path, kill_after):
    server = LiveServer(tmp_path / 'home')
    server.create_user('alice')
    server.admin('host', 'add', '--simulated', '--count', '10', '--cpus', '16', '--memory', '4096')
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = server.admin('image', 'register', str(disk), '--name', 'tiny', '--public', '--owner', 'alice').strip()
    server.start()
    try:
        thread, _ = launch_in_background(server.client(), image_id)
        time.sleep(kill_after)
        server.kill()
        thread.join(30)
        server.start()
        instances = wait_settled(server.home)
    finally:
        server.stop()
    _, hosts, leases = database_facts(server.home)
    assert len(instances) in (0, 100)          # the launch committed whole or not at all
    for instance_id, state, reason, *_ in instances:
        assert state == 'running' or (state == 'failed' and reason), (instance_id, state, reason)
    live = [instance for instance in instances if instance[1] == 'running']
    for host_id, used_cpus, used_memory in hosts:
        mine = [instance for instance in live if instance[3] == host_id]
        assert used_cpus == sum(instance[4] for instance in mine)
        assert used_memory == sum(instance[5] for instance in mine)
    assert sorted(leases) == sorted(instance[0] for instance in live)
