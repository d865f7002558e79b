"""The AWS SDK for JavaScript v3 (@aws-sdk/client-ec2 on node), driven through a small script in
tests/clients/js that runs a list of calls and prints their outcomes as JSON. `make install`
installs the package there."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .keys import created_key_fingerprint

pytestmark = pytest.mark.clients

CLIENT_DIR = Path(__file__).resolve().parents[1] / 'clients' / 'js'
SCRIPT = CLIENT_DIR / 'ec2.mjs'


def run_calls(cloud_server, *calls, user='alice', secret=None):
    """Run (command, input) calls in one node process; return their outcomes."""
    node = shutil.which('node')
    if node is None or not (CLIENT_DIR / 'node_modules' / '@aws-sdk' / 'client-ec2').is_dir():
        pytest.fail('node and @aws-sdk/client-ec2 are needed: run `make install`')
    credentials = cloud_server.users[user]
    request = {'endpoint': cloud_server.endpoint, 'region': cloud_server.region,
               'accessKeyId': credentials['access_key_id'],
               'secretAccessKey': secret or credentials['secret_access_key'],
               'calls': [{'command': command, 'input': params} for command, params in calls]}
    result = subprocess.run([node, str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                            cwd=CLIENT_DIR, timeout=120)
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert len(outcomes) == len(calls)
    return outcomes


def output(outcome):
    assert outcome['ok'], outcome['error']
    return outcome['output']


def error_code(outcome):
    assert not outcome['ok'], outcome['output']
    return outcome['error']['code']


def test_regions_zones_and_instance_types(cloud_server, cloud_config):
    regions, zones, kinds = run_calls(cloud_server, ('DescribeRegions', {}), ('DescribeAvailabilityZones', {}),
                                      ('DescribeInstanceTypes', {}))
    assert [region['RegionName'] for region in output(regions)['Regions']] == [cloud_config.region]
    assert [(zone['ZoneName'], zone['State']) for zone in output(zones)['AvailabilityZones']] == [
        (name, 'available') for name in cloud_config.zones]
    assert {kind['InstanceType']: (kind['VCpuInfo']['DefaultVCpus'], kind['MemoryInfo']['SizeInMiB'])
            for kind in output(kinds)['InstanceTypes']} == {
        name: (kind.vcpus, kind.memory_mib) for name, kind in cloud_config.instance_types.items()}


def test_images(cloud_server, public_image):
    by_id, own, unknown = run_calls(
        cloud_server, ('DescribeImages', {'ImageIds': [public_image]}), ('DescribeImages', {'Owners': ['self']}),
        ('DescribeImages', {'ImageIds': ['ami-0123456789abcdef0']}), user='bob')
    [image] = output(by_id)['Images']
    assert (image['ImageId'], image['Name'], image['State'], image['Public']) == (
        public_image, 'tiny-public', 'available', True)
    assert public_image not in [image['ImageId'] for image in output(own)['Images']]
    assert error_code(unknown) == 'InvalidAMIID.NotFound'


def test_key_pair_cycle(cloud_server, key_name, ed25519_public_key):
    names = [key_name, f'{key_name}-ed', f'{key_name}-imported']
    rsa, ed25519, imported, described, duplicate = run_calls(
        cloud_server,
        ('CreateKeyPair', {'KeyName': names[0]}),
        ('CreateKeyPair', {'KeyName': names[1], 'KeyType': 'ed25519'}),
        ('ImportKeyPair', {'KeyName': names[2], 'PublicKeyMaterial': {'$utf8': ed25519_public_key.line}}),
        ('DescribeKeyPairs', {'KeyNames': names}),
        ('CreateKeyPair', {'KeyName': names[0]}))
    rsa, ed25519 = output(rsa), output(ed25519)
    assert rsa['KeyFingerprint'] == created_key_fingerprint(rsa['KeyMaterial'])
    assert ed25519['KeyFingerprint'] == created_key_fingerprint(ed25519['KeyMaterial'])
    assert output(imported)['KeyFingerprint'] == ed25519_public_key.fingerprint
    assert {pair['KeyName']: (pair['KeyType'], pair['KeyFingerprint']) for pair in output(described)['KeyPairs']} == {
        names[0]: ('rsa', rsa['KeyFingerprint']), names[1]: ('ed25519', ed25519['KeyFingerprint']),
        names[2]: ('ed25519', ed25519_public_key.fingerprint)}
    assert error_code(duplicate) == 'InvalidKeyPair.Duplicate'

    [bob_looks] = run_calls(cloud_server, ('DescribeKeyPairs', {'KeyNames': [names[0]]}), user='bob')
    assert error_code(bob_looks) == 'InvalidKeyPair.NotFound'

    *deleted, gone = run_calls(cloud_server, *[('DeleteKeyPair', {'KeyName': name}) for name in names],
                               ('DescribeKeyPairs', {'KeyNames': [names[0]]}))
    assert all(output(outcome)['Return'] is True for outcome in deleted)
    assert error_code(gone) == 'InvalidKeyPair.NotFound'


def test_a_wrong_secret_is_an_auth_failure(cloud_server):
    [outcome] = run_calls(cloud_server, ('DescribeRegions', {}), secret='0' * 40)
    assert error_code(outcome) == 'AuthFailure'
    assert outcome['error']['status'] in (401, 403)
