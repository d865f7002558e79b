"""`ssh -i key.pem root@address` into instances of the stock image, the host key checked against
what the console printed, as a careful user does after run-instances.

Two guests boot once for the module, one per key type CreateKeyPair makes (ED25519 and RSA).
"""
import os
import re
import subprocess

import pytest

from .conftest import CONTEXTUALIZED, security_group, tcp_in, wait_for_console, wait_for_states

pytestmark = [pytest.mark.vm, pytest.mark.xdist_group('vm-ssh')]   # its two guests boot once

SSH_STARTED = 'reservoir-context: ssh server started'
HOST_KEYS = re.compile(r'-----BEGIN SSH HOST KEY KEYS-----\n(.*?)-----END SSH HOST KEY KEYS-----', re.S)
FINGERPRINTS = re.compile(
    r'-----BEGIN SSH HOST KEY FINGERPRINTS-----\n(.*?)-----END SSH HOST KEY FINGERPRINTS-----', re.S)
KEY_TYPES = ('ed25519', 'rsa')


class Guest:
    """A running instance, the private key of its key pair, and what its console says of its host keys."""

    def __init__(self, instance_id, vpc_id, address, key, console):
        self.instance_id, self.vpc_id, self.address, self.key = instance_id, vpc_id, address, key
        console = console.replace('\r\n', '\n')        # a serial console ends its lines with CR LF
        self.fingerprint_lines = _lines(FINGERPRINTS.search(console).group(1))
        self.host_keys = _lines(HOST_KEYS.search(console).group(1))

    def known_hosts(self, directory, host_keys=None):
        """A known_hosts file that trusts `host_keys` (this guest's own by default) for its address."""
        path = directory / f'known_hosts-{self.instance_id}'
        path.write_text(''.join(f'{self.address} {key}\n' for key in host_keys or self.host_keys))
        return path


def _lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_private_key(directory, name, material):
    path = directory / f'{name}.pem'
    path.write_text(material)
    os.chmod(path, 0o600)         # ssh ignores a private key others can read
    return path


@pytest.fixture(scope='module')
def guests(ec2, vm_cloud, tmp_path_factory):
    """{key type: Guest}, both booted at once and each logged in with a key pair of that type."""
    directory = tmp_path_factory.mktemp('ssh')
    launched = {}
    ssh_in = security_group(ec2, 'ssh', tcp_in(22))
    try:
        for key_type in KEY_TYPES:
            pair = ec2.create_key_pair(KeyName=f'laptop-{key_type}', KeyType=key_type)
            (instance,) = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1,
                                            InstanceType='t1.micro', KeyName=pair['KeyName'],
                                            SecurityGroupIds=[ssh_in])['Instances']
            launched[key_type] = (instance, write_private_key(directory, pair['KeyName'], pair['KeyMaterial']))
        ids = [instance['InstanceId'] for instance, _ in launched.values()]
        wait_for_states(ec2, ids, {'running'})
        yield {key_type: Guest(instance['InstanceId'], instance['VpcId'], instance['PrivateIpAddress'], key,
                               wait_for_console(ec2, instance['InstanceId'], CONTEXTUALIZED, SSH_STARTED))
               for key_type, (instance, key) in launched.items()}
    finally:
        ids = [instance['InstanceId'] for instance, _ in launched.values()]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_for_states(ec2, ids, {'terminated'})
        for key_type in KEY_TYPES:
            ec2.delete_key_pair(KeyName=f'laptop-{key_type}')
        ec2.delete_security_group(GroupId=ssh_in)


def ssh(vm_cloud, key, known_hosts, guest, command):
    """OpenSSH to `guest` from its VPC's router, trusting only the host keys in `known_hosts`."""
    return vm_cloud.in_vpc(
        guest.vpc_id, 'ssh', '-i', str(key), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
        '-o', f'UserKnownHostsFile={known_hosts}', '-o', 'ConnectTimeout=20', '-o', 'IdentitiesOnly=yes',
        f'root@{guest.address}', command, check=False, timeout=90)


def test_console_fingerprints_are_those_of_the_host_keys_it_prints(guests, tmp_path):
    for guest in guests.values():
        assert any(line.startswith('ssh-ed25519 ') for line in guest.host_keys)
        # ssh-keygen fingerprints the public keys itself: "256 SHA256:… address (ED25519)".
        computed = subprocess.run(['ssh-keygen', '-l', '-f', str(guest.known_hosts(tmp_path))],
                                  capture_output=True, text=True, check=True).stdout
        expected = {(line.split()[1], line.split()[-1]) for line in _lines(computed)}
        # As cloud-init prints them: "256 SHA256:… root@hostname (ED25519)".
        printed = {(line.split()[1], line.split()[-1]) for line in guest.fingerprint_lines}
        assert printed == expected and len(printed) == len(guest.host_keys)
        assert all(line.endswith(f'root@{guest.instance_id} ' + line.split()[-1])
                   for line in guest.fingerprint_lines)


@pytest.mark.parametrize('key_type', KEY_TYPES)
def test_login_with_the_key_pair_runs_a_command_as_root(guests, vm_cloud, tmp_path, key_type):
    guest = guests[key_type]
    result = ssh(vm_cloud, guest.key, guest.known_hosts(tmp_path), guest, 'cat /etc/hostname; id -u')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [guest.instance_id, '0']


def test_another_key_pair_is_refused(guests, vm_cloud, tmp_path):
    ed25519, rsa = guests['ed25519'], guests['rsa']
    refused = ssh(vm_cloud, rsa.key, ed25519.known_hosts(tmp_path), ed25519, 'true')
    assert refused.returncode != 0 and 'Permission denied' in refused.stderr


def test_a_host_key_other_than_the_console_shows_is_not_trusted(guests, vm_cloud, tmp_path):
    ed25519, rsa = guests['ed25519'], guests['rsa']
    known_hosts = ed25519.known_hosts(tmp_path, host_keys=rsa.host_keys)     # the wrong guest's keys
    refused = ssh(vm_cloud, ed25519.key, known_hosts, ed25519, 'true')
    assert refused.returncode != 0 and 'Host key verification failed' in refused.stderr
