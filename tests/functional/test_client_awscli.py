"""The AWS CLI (v1, installed in the test environment) run as a user runs it: a subprocess with the
credentials in the environment, --endpoint-url, JSON output."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .keys import created_key_fingerprint

pytestmark = pytest.mark.clients

AWS = Path(sys.executable).with_name('aws')


def aws(cloud_server, *arguments, user='alice', secret=None):
    """Run `aws ec2 ARGUMENTS`; return the CompletedProcess."""
    credentials = cloud_server.users[user]
    env = {
        'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
        'HOME': str(cloud_server.home),
        'AWS_ACCESS_KEY_ID': credentials['access_key_id'],
        'AWS_SECRET_ACCESS_KEY': secret or credentials['secret_access_key'],
        'AWS_DEFAULT_REGION': cloud_server.region,
        # Nothing from a developer's own ~/.aws may leak in.
        'AWS_CONFIG_FILE': os.devnull,
        'AWS_SHARED_CREDENTIALS_FILE': os.devnull,
        'AWS_MAX_ATTEMPTS': '1',
    }
    return subprocess.run([str(AWS), 'ec2', *arguments, '--endpoint-url', cloud_server.endpoint,
                           '--output', 'json'], env=env, capture_output=True, text=True, timeout=120)


def aws_json(cloud_server, *arguments, **kwargs):
    result = aws(cloud_server, *arguments, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def aws_error(cloud_server, *arguments, **kwargs):
    """The EC2 error code the CLI reports: 'An error occurred (CODE) when calling ...'."""
    result = aws(cloud_server, *arguments, **kwargs)
    assert result.returncode != 0, result.stdout
    assert 'An error occurred (' in result.stderr, result.stderr
    return result.stderr.split('An error occurred (', 1)[1].split(')', 1)[0]


def test_describe_regions(cloud_server, cloud_config):
    regions = aws_json(cloud_server, 'describe-regions')['Regions']
    assert [region['RegionName'] for region in regions] == [cloud_config.region]


def test_describe_availability_zones(cloud_server, cloud_config):
    zones = aws_json(cloud_server, 'describe-availability-zones')['AvailabilityZones']
    assert [(zone['ZoneName'], zone['State']) for zone in zones] == [
        (name, 'available') for name in cloud_config.zones]


def test_describe_instance_types(cloud_server, cloud_config):
    listed = aws_json(cloud_server, 'describe-instance-types')['InstanceTypes']
    assert {kind['InstanceType']: (kind['VCpuInfo']['DefaultVCpus'], kind['MemoryInfo']['SizeInMiB'])
            for kind in listed} == {name: (kind.vcpus, kind.memory_mib)
                                    for name, kind in cloud_config.instance_types.items()}


def test_describe_images(cloud_server, public_image):
    [image] = aws_json(cloud_server, 'describe-images', '--image-ids', public_image, user='bob')['Images']
    assert (image['ImageId'], image['Name'], image['State'], image['Public']) == (
        public_image, 'tiny-public', 'available', True)
    # --query is JMESPath run by the CLI itself on the full answer.
    ids = aws_json(cloud_server, 'describe-images', '--owners', 'self', '--query', 'Images[].ImageId')
    assert public_image in ids
    assert aws_error(cloud_server, 'describe-images', '--image-ids', 'ami-0123456789abcdef0') == \
        'InvalidAMIID.NotFound'


def test_key_pair_cycle(cloud_server, key_name, rsa_public_key, tmp_path):
    created = aws_json(cloud_server, 'create-key-pair', '--key-name', key_name)
    assert created['KeyName'] == key_name
    assert created['KeyFingerprint'] == created_key_fingerprint(created['KeyMaterial'])
    ed25519 = aws_json(cloud_server, 'create-key-pair', '--key-name', f'{key_name}-ed', '--key-type', 'ed25519')
    assert ed25519['KeyFingerprint'] == created_key_fingerprint(ed25519['KeyMaterial'])

    public_key_file = tmp_path / 'id_rsa.pub'
    public_key_file.write_text(rsa_public_key.line + '\n')
    imported = aws_json(cloud_server, 'import-key-pair', '--key-name', f'{key_name}-imported',
                        '--public-key-material', f'fileb://{public_key_file}')
    assert imported['KeyFingerprint'] == rsa_public_key.fingerprint

    names = [key_name, f'{key_name}-ed', f'{key_name}-imported']
    described = aws_json(cloud_server, 'describe-key-pairs', '--key-names', *names)['KeyPairs']
    assert {pair['KeyName']: pair['KeyFingerprint'] for pair in described} == {
        key_name: created['KeyFingerprint'], f'{key_name}-ed': ed25519['KeyFingerprint'],
        f'{key_name}-imported': rsa_public_key.fingerprint}
    assert aws_error(cloud_server, 'describe-key-pairs', '--key-names', key_name, user='bob') == \
        'InvalidKeyPair.NotFound'

    for name in names:
        aws_json(cloud_server, 'delete-key-pair', '--key-name', name)
    assert aws_error(cloud_server, 'describe-key-pairs', '--key-names', key_name) == 'InvalidKeyPair.NotFound'


def test_a_wrong_secret_is_an_auth_failure(cloud_server):
    assert aws_error(cloud_server, 'describe-regions', secret='0' * 40) == 'AuthFailure'
