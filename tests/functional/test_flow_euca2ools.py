"""euca2ools 3.4 (Python 3 build, see the Makefile) as a user runs it: `euca-*` commands with
EC2_URL=REGION::URL and the keys in the environment, parsed from their tab-separated output, against
a server whose worker boots instances on simulated hosts."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients

EUCA = Path(__file__).resolve().parents[2] / 'var' / 'euca2ools' / 'venv' / 'bin'
USER_DATA = '#!/bin/sh\necho "hello from euca2ools"\n'

if not (EUCA / 'euca-version').exists():
    message = f'euca2ools is not built in {EUCA.parent.parent} (make install builds it)'
    if os.environ.get('CI'):
        raise RuntimeError(message)      # CI must run every client test
    pytestmark = [pytestmark, pytest.mark.skip(reason=message)]


class Euca:
    def __init__(self, server, user, secret=None):
        credentials = server.users[user]
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': str(server.home),                  # no ~/.euca of the developer's
            'EC2_URL': f'{server.region}::{server.endpoint}/',
            'AWS_ACCESS_KEY_ID': credentials['access_key_id'],
            'AWS_SECRET_ACCESS_KEY': secret or credentials['secret_access_key'],
        }

    def call(self, command, *arguments):
        return subprocess.run([str(EUCA / command), *arguments], env=self.env, capture_output=True, text=True,
                              timeout=120)

    def run(self, command, *arguments):
        """The command must succeed: its output as rows of tab-separated fields."""
        result = self.call(command, *arguments)
        assert result.returncode == 0, f'{command} {" ".join(arguments)}: {result.stderr}'
        return [line.split('\t') for line in result.stdout.splitlines() if line.strip()]

    def error(self, command, *arguments):
        """The EC2 error code the command reports: 'euca-…: error (CODE): message'."""
        result = self.call(command, *arguments)
        assert result.returncode != 0, result.stdout
        return result.stderr.split('error (', 1)[1].split(')', 1)[0]

    def states(self, *ids):
        return {row[1]: row[5] for row in self.run('euca-describe-instances', *ids) if row[0] == 'INSTANCE'}

    def wait_state(self, ids, state, timeout=60):
        deadline = time.monotonic() + timeout
        while set(self.states(*ids).values()) != {state}:
            assert time.monotonic() < deadline, f'{ids} not {state}: {self.states(*ids)}'
            time.sleep(0.3)


def test_the_instance_flow_with_euca2ools(compute_server, tmp_path):
    euca = Euca(compute_server, compute_server.new_user('euca'))
    assert [row[:2] for row in euca.run('euca-describe-regions')] == [['REGION', compute_server.region]]
    assert any(row[0] == 'IMAGE' and row[1] == compute_server.image_id
               for row in euca.run('euca-describe-images', compute_server.image_id))

    keypair = euca.run('euca-create-keypair', 'laptop')
    assert keypair[0][:2] == ['KEYPAIR', 'laptop'] and any('PRIVATE KEY' in ''.join(row) for row in keypair)
    assert [row[:2] for row in euca.run('euca-describe-keypairs')] == [['KEYPAIR', 'laptop']]

    user_data = tmp_path / 'user-data.sh'
    user_data.write_text(USER_DATA)
    launched = euca.run('euca-run-instances', compute_server.image_id, '-n', '2', '-t', 't1.micro',
                        '-k', 'laptop', '-f', str(user_data))
    ids = sorted(row[1] for row in launched if row[0] == 'INSTANCE')
    assert len(ids) == 2 and launched[0][0] == 'RESERVATION'
    euca.wait_state(ids, 'running')

    euca.run('euca-create-tags', *ids, '--tag', 'Name=web', '--tag', 'tier=front')
    euca.run('euca-delete-tags', ids[1], '--tag', 'tier')
    tags = sorted((row[2], row[3], row[4]) for row in euca.run('euca-describe-tags') if row[0] == 'TAG')
    assert tags == sorted([(ids[0], 'Name', 'web'), (ids[0], 'tier', 'front'), (ids[1], 'Name', 'web')])
    filtered = euca.run('euca-describe-instances', '--filter', 'tag:tier=front')
    assert [row[1] for row in filtered if row[0] == 'INSTANCE'] == [ids[0]]

    # Elastic IPs, classic style as euca2ools sends them (PublicIp).
    address = euca.run('euca-allocate-address')[0][1]
    euca.run('euca-associate-address', '-i', ids[0], address)
    assert [row[:3] for row in euca.run('euca-describe-addresses', address)] == [['ADDRESS', address, ids[0]]]
    euca.run('euca-disassociate-address', address)
    euca.run('euca-release-address', address)
    assert euca.run('euca-describe-addresses') == []

    euca.run('euca-stop-instances', ids[0])
    euca.wait_state([ids[0]], 'stopped')
    euca.run('euca-start-instances', ids[0])
    euca.wait_state([ids[0]], 'running')
    euca.run('euca-reboot-instances', ids[0])
    console = '\n'.join('\t'.join(row) for row in euca.run('euca-get-console-output', ids[0]))
    assert ids[0] in console and f'domain {ids[0]} started' in console
    # euca2ools prints the user data decoded, after a 'userData <id>' line.
    attribute = euca.call('euca-describe-instance-attribute', '--user-data', ids[1]).stdout
    assert attribute.startswith(f'userData\t{ids[1]}\n{USER_DATA}')

    euca.run('euca-terminate-instances', *ids)
    euca.wait_state(ids, 'terminated')
    euca.run('euca-delete-keypair', 'laptop')
    assert euca.run('euca-describe-keypairs') == []


def test_euca2ools_is_refused_with_a_wrong_secret_and_a_wrong_region(compute_server):
    user = compute_server.new_user('euca-refused')
    assert Euca(compute_server, user, secret='x' * 40).error('euca-describe-regions') == 'AuthFailure'
    elsewhere = Euca(compute_server, user)
    elsewhere.env['EC2_URL'] = f'us-east-1::{compute_server.endpoint}/'
    assert elsewhere.error('euca-describe-regions') == 'AuthFailure'


def test_the_group_flow_with_euca2ools(compute_server):
    euca = Euca(compute_server, compute_server.new_user('euca-sg'))
    [(_, group_id, name, description)] = euca.run('euca-create-group', '-d', 'web servers', 'web')
    assert (name, description) == ('web', 'web servers')
    euca.run('euca-authorize', '-P', 'tcp', '-p', '22', '-s', '10.0.0.0/8', 'web')
    account = euca.run('euca-describe-groups', 'web')[0][2]
    # euca2ools 3.4 adds CidrIp 0.0.0.0/0 to a rule that names a group (it checks the wrong parameter
    # for a peer): AWS makes both rules of such a request, and so does Reservoir.
    euca.run('euca-authorize', '-P', 'tcp', '-p', '80-81', '-o', 'default', '-u', account, 'web')
    euca.run('euca-authorize', '-P', 'icmp', '-t', '8:-1', '-s', '0.0.0.0/0', 'web')
    assert euca.error('euca-authorize', '-P', 'tcp', '-p', '22', '-s', '10.0.0.0/8', 'web') == \
        'InvalidPermission.Duplicate'
    rows = euca.run('euca-describe-groups', '--filter', 'ip-permission.from-port=80')
    assert [row[1] for row in rows if row[0] == 'GROUP'] == [group_id]
    permissions = sorted(tuple(row[4:10]) + (row[-1],) for row in rows if row[0] == 'PERMISSION')
    assert permissions == [('-1', '', '', 'TO', 'CIDR', '0.0.0.0/0', 'egress'),
                           ('icmp', '8', '-1', 'FROM', 'CIDR', '0.0.0.0/0', 'ingress'),
                           ('tcp', '22', '22', 'FROM', 'CIDR', '10.0.0.0/8', 'ingress'),
                           ('tcp', '80', '81', 'FROM', 'CIDR', '0.0.0.0/0', 'ingress'),
                           ('tcp', '80', '81', 'FROM', 'USER', account, 'ingress')]
    [peer] = [row for row in rows if row[0] == 'PERMISSION' and 'USER' in row]
    assert peer[10:12] == ['ID', euca.run('euca-describe-groups', 'default')[0][1]]
    assert euca.run('euca-describe-groups', '--filter', 'ip-permission.from-port=443') == []

    launched = euca.run('euca-run-instances', '-g', 'web', '-t', 't1.micro', compute_server.image_id)
    [instance_id] = [row[1] for row in launched if row[0] == 'INSTANCE']
    assert [row[1] for row in launched if row[0] == 'GROUP'] == [group_id]
    euca.run('euca-revoke', '-P', 'tcp', '-p', '22', '-s', '10.0.0.0/8', 'web')
    assert euca.error('euca-revoke', '-P', 'tcp', '-p', '22', '-s', '10.0.0.0/8', 'web') == 'InvalidPermission.NotFound'
    assert euca.error('euca-delete-group', 'web') == 'DependencyViolation'
    euca.run('euca-terminate-instances', instance_id)
    euca.wait_state([instance_id], 'terminated')
    euca.run('euca-delete-group', 'web')
    assert [row[3] for row in euca.run('euca-describe-groups') if row[0] == 'GROUP'] == ['default']


def test_the_volume_flow_with_euca2ools(compute_server):
    euca = Euca(compute_server, compute_server.new_user('euca-volumes'))
    launched = euca.run('euca-run-instances', '-t', 't1.micro', '-z', 'reservoir-1a', compute_server.image_id)
    [instance_id] = [row[1] for row in launched if row[0] == 'INSTANCE']
    euca.wait_state([instance_id], 'running')
    [(kind, volume_id, size, _snapshot, zone, state, _created)] = euca.run('euca-create-volume', '-s', '1', '-z',
                                                                          'reservoir-1a')
    assert (kind, size, zone, state) == ('VOLUME', '1', 'reservoir-1a', 'creating')

    def volume_rows():
        return {row[0]: row for row in euca.run('euca-describe-volumes', volume_id)}

    wait_for(lambda: volume_rows()['VOLUME'][5] == 'available')
    [attachment] = euca.run('euca-attach-volume', '-i', instance_id, '-d', '/dev/sdf', volume_id)
    assert attachment[:5] == ['ATTACHMENT', volume_id, instance_id, '/dev/sdf', 'attaching']
    wait_for(lambda: volume_rows().get('ATTACHMENT', [''] * 5)[4] == 'attached')
    assert volume_rows()['VOLUME'][5] == 'in-use'
    assert euca.error('euca-delete-volume', volume_id) == 'VolumeInUse'
    euca.run('euca-detach-volume', volume_id)
    wait_for(lambda: volume_rows()['VOLUME'][5] == 'available')
    euca.run('euca-delete-volume', volume_id)
    assert euca.error('euca-describe-volumes', volume_id) == 'InvalidVolume.NotFound'
    euca.run('euca-terminate-instances', instance_id)


def test_the_snapshot_flow_with_euca2ools(compute_server):
    owner, friend = compute_server.new_user('euca-snapshots'), compute_server.new_user('euca-snapshots-friend')
    euca, other = Euca(compute_server, owner), Euca(compute_server, friend)
    friend_account = compute_server.users[friend]['account_id']
    [volume] = euca.run('euca-create-volume', '-s', '1', '-z', 'reservoir-1a')
    volume_id = volume[1]
    wait_for(lambda: euca.run('euca-describe-volumes', volume_id)[0][5] == 'available')
    [(kind, snapshot_id, of_volume, state, _started, account, size, description)] = euca.run(
        'euca-create-snapshot', '-d', 'nightly', volume_id)
    assert (kind, of_volume, account, size, description) == \
        ('SNAPSHOT', volume_id, compute_server.users[owner]['account_id'], '1', 'nightly')
    assert state in ('pending', 'completed')

    # SNAPSHOT, id, volume, status, started, progress, owner, size, description. Without ids or -o, the
    # command asks twice (Owner=self, then RestorableBy=self) and prints both answers: -o self asks once.
    def snapshot_row(*arguments):
        [row] = [row for row in euca.run('euca-describe-snapshots', *arguments) if row[0] == 'SNAPSHOT']
        return row

    wait_for(lambda: snapshot_row(snapshot_id)[3] == 'completed')
    assert snapshot_row('-o', 'self', '--filter', f'volume-id={volume_id}', '--filter', 'status=completed')[1:6:4] \
        == [snapshot_id, '100%']
    assert euca.run('euca-describe-snapshots', '-o', 'self', '--filter', 'description=weekly') == []

    # VOLUME, id, size, snapshot, zone, state, created: the size is the snapshot's when none is given.
    [restored] = euca.run('euca-create-volume', '--snapshot', snapshot_id, '-z', 'reservoir-1a')
    assert (restored[0], restored[2], restored[3], restored[4]) == ('VOLUME', '1', snapshot_id, 'reservoir-1a')
    wait_for(lambda: euca.run('euca-describe-volumes', restored[1])[0][5] == 'available')

    assert other.run('euca-describe-snapshots') == []
    assert euca.run('euca-modify-snapshot-attribute', '-c', '-a', friend_account, snapshot_id) == \
        [['createVolumePermission', snapshot_id, 'ADD', 'UserId', friend_account]]
    assert euca.run('euca-describe-snapshot-attribute', '-c', snapshot_id) == \
        [['createVolumePermission', snapshot_id, 'userId', friend_account]]
    assert [row[1] for row in other.run('euca-describe-snapshots') if row[0] == 'SNAPSHOT'] == [snapshot_id]

    assert euca.run('euca-delete-snapshot', snapshot_id) == [['SNAPSHOT', snapshot_id]]
    assert euca.error('euca-describe-snapshots', snapshot_id) == 'InvalidSnapshot.NotFound'
    assert euca.error('euca-create-volume', '--snapshot', snapshot_id, '-z', 'reservoir-1a') == \
        'InvalidSnapshot.NotFound'
    assert other.run('euca-describe-snapshots') == []
    euca.run('euca-delete-volume', restored[1])
    euca.run('euca-delete-volume', volume_id)
    assert euca.run('euca-describe-snapshots', '-o', 'self') == [] and euca.run('euca-describe-volumes') == []
