"""Real VMs moving between two real libvirt hosts of this machine: two `libvirtd` daemons of their
own (own directories, own host UUIDs, own sockets), registered as qemu+unix hosts without shared
storage, so everything an instance needs reaches them through the libvirt connection: its overlay
and context CD are volumes of the daemon's storage pool, never files of the server's state
directory. A stock image VM boots on one and is contextualized; it moves live to the other (its
disk copied by QEMU) while a neighbour in its subnet pings it, and keeps answering; it moves back
cold; `host evacuate` empties a host, of it running and then of it stopped (its disk copied whole,
and it boots from it on the other daemon); terminating leaves no domain, overlay, context CD or
console log on either daemon."""
import hashlib
import json
import subprocess
import sys
import time

import pytest

from tests.vm.conftest import (CONTEXTUALIZED, cloud_on_two_daemons, launch_pingable, missing_requirement,
                               wait_for_console, wait_for_states)

pytestmark = pytest.mark.vm


@pytest.fixture(scope='module')
def two_hosts():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    with cloud_on_two_daemons() as hosts:
        yield hosts


def moves(cloud, *arguments):
    """The moves a `reservoir` command printed, whether or not they all succeeded."""
    result = subprocess.run(['ip', 'netns', 'exec', cloud.namespace, sys.executable, '-m', 'backend.cli',
                             *arguments, '--json'], env=cloud.env, capture_output=True, text=True, timeout=600)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def on(daemon, instance_id):
    """Whether the daemon has a domain of the instance (named <prefix>-<instance id>)."""
    return any(name.endswith(instance_id) for name in daemon.domains())


def volumes(daemon, instance_id):
    """What of the instance is in the daemon's storage pool ('disk.qcow2', 'context.iso', …): the
    daemon's /var/lib/libvirt is <its directory>/lib."""
    found = (daemon.directory / 'lib').glob(f'*-instances/*-{instance_id}-*')
    return {path.name.rsplit('-', 1)[1] for path in found}


def overlay_digest(daemon, instance_id):
    """A digest of the instance's overlay in the daemon's pool: what the guest wrote to its disk."""
    (overlay,) = (daemon.directory / 'lib').glob(f'*-instances/*-{instance_id}-disk.qcow2')
    return hashlib.sha256(overlay.read_bytes()).hexdigest()


def bases(daemon):
    return {path.name for path in (daemon.directory / 'lib').glob('*-instances/base-*')}


def host_of(cloud, instance_id):
    listed = json.loads(cloud.admin('instance', 'list', '--json'))
    return next(row['host_name'] for row in listed if row['instance_id'] == instance_id)


class Pinger:
    """Pings an address from a VPC's router once every 0.1 s in the background; counts the answers."""

    def __init__(self, cloud, vpc_id, address):
        self.process = subprocess.Popen(cloud.vpc_command(vpc_id, 'ping', '-i', '0.1', '-W', '1', address),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        self.process.terminate()
        output, _ = self.process.communicate(timeout=10)
        return output.count('bytes from'), output


def test_a_vm_moves_live_and_cold_and_leaves_nothing_behind(two_hosts):
    cloud, ec2, daemons = two_hosts
    shown = launch_pingable(cloud, ec2)
    instance_id = shown['InstanceId']
    address, vpc_id = shown['PrivateIpAddress'], shown['VpcId']
    source = host_of(cloud, instance_id)
    target = 'right' if source == 'left' else 'left'
    assert on(daemons[source], instance_id)
    # Its disks came through the connection: volumes in the daemon's pool, nothing in the state directory.
    local = cloud.home / 'home' / 'instances' / instance_id
    assert {'disk.qcow2', 'context.iso', 'console.log'} <= volumes(daemons[source], instance_id)
    assert not volumes(daemons[target], instance_id) and bases(daemons[source])
    assert not (local / 'disk.qcow2').exists() and not (local / 'context.iso').exists()
    cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '2', address)

    # Live: the guest keeps answering while it moves.
    pinger = Pinger(cloud, vpc_id, address)
    time.sleep(2)
    (move,) = moves(cloud, 'instance', 'migrate', instance_id, '--host', target)
    time.sleep(3)
    answered, output = pinger.stop()
    assert move['outcome'] == 'moved', (move, cloud.log()[-3000:])
    assert host_of(cloud, instance_id) == target
    assert on(daemons[target], instance_id) and not on(daemons[source], instance_id)
    assert answered >= 20, output[-2000:]
    assert {'disk.qcow2', 'context.iso'} <= volumes(daemons[target], instance_id)
    assert not volumes(daemons[source], instance_id)
    assert ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]['State']['Name'] \
        == 'running'
    cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '2', address)

    # Cold, back where it came from: saved there, restored here, answering again.
    (move,) = moves(cloud, 'instance', 'migrate', instance_id, '--host', source, '--cold')
    assert move['outcome'] == 'moved', move
    assert on(daemons[source], instance_id) and not on(daemons[target], instance_id)
    assert {'disk.qcow2', 'context.iso'} <= volumes(daemons[source], instance_id)
    assert not volumes(daemons[target], instance_id)        # nor the saved guest, once restored
    cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '5', address)

    # Evacuation empties the host it is on.
    evacuated = moves(cloud, 'host', 'evacuate', source)
    assert [m['outcome'] for m in evacuated] == ['moved'], evacuated
    assert not daemons[source].domains() and on(daemons[target], instance_id)
    cloud.admin('host', 'enable', source)
    cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '2', address)

    # Stopped, it leaves an evacuated host too, with its disk as it was, and boots from it there.
    ec2.stop_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'stopped'})
    disk = overlay_digest(daemons[target], instance_id)
    evacuated = moves(cloud, 'host', 'evacuate', target)
    assert [(m['outcome'], m['target']) for m in evacuated] == [('moved', source)], evacuated
    assert not daemons[target].domains() and not volumes(daemons[target], instance_id)
    assert overlay_digest(daemons[source], instance_id) == disk
    assert ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]['State']['Name'] \
        == 'stopped'
    cloud.admin('host', 'enable', target)
    ec2.start_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'running'})
    assert host_of(cloud, instance_id) == source
    wait_for_console(ec2, instance_id, CONTEXTUALIZED)
    cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '5', address)

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'terminated'})
    assert not daemons['left'].domains() and not daemons['right'].domains()
    assert not volumes(daemons['left'], instance_id) and not volumes(daemons['right'], instance_id)
    assert bases(daemons['left']) and bases(daemons['right'])    # kept for the next instance
    assert not local.exists()
