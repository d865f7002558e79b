"""`ssh -i key.pem root@address` into an instance of the stock image, the host key checked against
what its console printed, as a careful user does after run-instances."""
import os
import re

import pytest

from .conftest import CONTEXTUALIZED, wait_for_console, wait_for_states

pytestmark = pytest.mark.vm

HOST_KEYS = re.compile(r'-----BEGIN SSH HOST KEY KEYS-----\n(.*?)-----END SSH HOST KEY KEYS-----', re.S)
FINGERPRINTS = re.compile(r'-----BEGIN SSH HOST KEY FINGERPRINTS-----\n(.*?)-----END SSH HOST KEY FINGERPRINTS-----',
                          re.S)


def ssh(vm_cloud, key, known_hosts, address, command):
    return vm_cloud.inside(
        'ssh', '-i', str(key), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
        '-o', f'UserKnownHostsFile={known_hosts}', '-o', 'ConnectTimeout=20', '-o', 'IdentitiesOnly=yes',
        f'root@{address}', command, check=False, timeout=90)


def private_key(tmp_path, name, material):
    path = tmp_path / name
    path.write_text(material)
    os.chmod(path, 0o600)
    return path


def test_ssh_with_the_key_pair_and_the_host_key_from_the_console(ec2, vm_cloud, tmp_path):
    mine = ec2.create_key_pair(KeyName='laptop', KeyType='ed25519')
    other = ec2.create_key_pair(KeyName='stranger', KeyType='rsa')
    (instance,) = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    KeyName='laptop')['Instances']
    instance_id, address = instance['InstanceId'], instance['PrivateIpAddress']
    try:
        text = wait_for_console(ec2, instance_id, CONTEXTUALIZED, 'reservoir-context: ssh server started')
        text = text.replace('\r\n', '\n')        # a serial console ends its lines with CR LF
        # As cloud-init prints them: fingerprints, then the public host keys.
        fingerprints = FINGERPRINTS.search(text).group(1).split('\n')
        assert any(line.startswith('256 SHA256:') and line.endswith('(ED25519)') for line in fingerprints)
        keys = [line.strip() for line in HOST_KEYS.search(text).group(1).splitlines() if line.strip()]
        assert any(key.startswith('ssh-ed25519 ') for key in keys)
        known_hosts = tmp_path / 'known_hosts'
        known_hosts.write_text(''.join(f'{address} {key}\n' for key in keys))

        key = private_key(tmp_path, 'laptop.pem', mine['KeyMaterial'])
        result = ssh(vm_cloud, key, known_hosts, address, 'cat /etc/hostname; id -u')
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [instance_id, '0']

        refused = ssh(vm_cloud, private_key(tmp_path, 'stranger.pem', other['KeyMaterial']), known_hosts,
                      address, 'true')
        assert refused.returncode != 0 and 'Permission denied' in refused.stderr
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_for_states(ec2, [instance_id], {'terminated'})
