"""boto3 against a live server: the read-only catalogue, images and the key-pair cycle, and the two
ways a request is refused before any action runs (wrong secret, stale clock)."""
import datetime

import botocore.auth
import botocore.exceptions
import pytest

from .keys import created_key_fingerprint

pytestmark = pytest.mark.clients

UNKNOWN_IMAGE = 'ami-0123456789abcdef0'


def error_code(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**kwargs)
    return raised.value.response['Error']['Code']


def test_describe_regions(cloud_server, cloud_config):
    regions = cloud_server.boto3_client().describe_regions()['Regions']
    assert [region['RegionName'] for region in regions] == [cloud_config.region]
    # DescribeRegions names the endpoint to use for the region: the one we are talking to.
    assert regions[0]['Endpoint'] in (cloud_server.endpoint, f'{cloud_server.host}:{cloud_server.port}')


def test_describe_availability_zones(cloud_server, cloud_config):
    zones = cloud_server.boto3_client().describe_availability_zones()['AvailabilityZones']
    assert [(zone['ZoneName'], zone['State'], zone['RegionName']) for zone in zones] == [
        (name, 'available', cloud_config.region) for name in cloud_config.zones]


def test_describe_instance_types_lists_the_catalogue(cloud_server, cloud_config):
    ec2 = cloud_server.boto3_client()
    listed = {kind['InstanceType']: (kind['VCpuInfo']['DefaultVCpus'], kind['MemoryInfo']['SizeInMiB'],
                                     kind['ProcessorInfo']['SupportedArchitectures'])
              for kind in ec2.describe_instance_types()['InstanceTypes']}
    assert listed == {name: (kind.vcpus, kind.memory_mib, [kind.architecture])
                      for name, kind in cloud_config.instance_types.items()}

    name = sorted(cloud_config.instance_types)[0]
    only = ec2.describe_instance_types(InstanceTypes=[name])['InstanceTypes']
    assert [kind['InstanceType'] for kind in only] == [name]
    assert error_code(ec2.describe_instance_types, InstanceTypes=['x9.nonexistent']) == 'InvalidInstanceType'


def test_a_public_image_is_visible_to_every_account_and_owned_by_one(cloud_server, public_image):
    alice, bob = cloud_server.boto3_client('alice'), cloud_server.boto3_client('bob')
    for ec2 in (alice, bob):
        [image] = ec2.describe_images(ImageIds=[public_image])['Images']
        assert (image['ImageId'], image['Name'], image['State'], image['Public'], image['ImageType']) == (
            public_image, 'tiny-public', 'available', True, 'machine')
        assert image['OwnerId'] == cloud_server.users['alice']['account_id']
        assert public_image in [image['ImageId'] for image in ec2.describe_images()['Images']]
    assert public_image in [image['ImageId'] for image in alice.describe_images(Owners=['self'])['Images']]
    assert public_image not in [image['ImageId'] for image in bob.describe_images(Owners=['self'])['Images']]


def test_describe_images_refuses_unknown_and_malformed_ids(cloud_server):
    ec2 = cloud_server.boto3_client()
    assert error_code(ec2.describe_images, ImageIds=[UNKNOWN_IMAGE]) == 'InvalidAMIID.NotFound'
    assert error_code(ec2.describe_images, ImageIds=['not-an-image']) == 'InvalidAMIID.Malformed'


def test_key_pair_cycle(cloud_server, key_name, rsa_public_key, ed25519_public_key):
    ec2 = cloud_server.boto3_client()
    names = {kind: f'{key_name}-{kind}' for kind in ('rsa', 'ed25519', 'imported-rsa', 'imported-ed25519')}

    rsa = ec2.create_key_pair(KeyName=names['rsa'])
    assert rsa['KeyMaterial'].startswith('-----BEGIN RSA PRIVATE KEY-----')
    assert rsa['KeyFingerprint'] == created_key_fingerprint(rsa['KeyMaterial'])
    ed25519 = ec2.create_key_pair(KeyName=names['ed25519'], KeyType='ed25519')
    assert ed25519['KeyMaterial'].startswith('-----BEGIN OPENSSH PRIVATE KEY-----')
    assert ed25519['KeyFingerprint'] == created_key_fingerprint(ed25519['KeyMaterial'])
    imported_rsa = ec2.import_key_pair(KeyName=names['imported-rsa'],
                                       PublicKeyMaterial=rsa_public_key.line.encode())
    assert imported_rsa['KeyFingerprint'] == rsa_public_key.fingerprint
    imported_ed25519 = ec2.import_key_pair(KeyName=names['imported-ed25519'],
                                           PublicKeyMaterial=ed25519_public_key.line.encode())
    assert imported_ed25519['KeyFingerprint'] == ed25519_public_key.fingerprint

    described = ec2.describe_key_pairs(KeyNames=list(names.values()), IncludePublicKey=True)['KeyPairs']
    assert {pair['KeyName']: (pair['KeyType'], pair['KeyFingerprint']) for pair in described} == {
        names['rsa']: ('rsa', rsa['KeyFingerprint']),
        names['ed25519']: ('ed25519', ed25519['KeyFingerprint']),
        names['imported-rsa']: ('rsa', rsa_public_key.fingerprint),
        names['imported-ed25519']: ('ed25519', ed25519_public_key.fingerprint),
    }
    public_keys = {pair['KeyName']: pair['PublicKey'].split()[:2] for pair in described}
    assert public_keys[names['imported-rsa']] == rsa_public_key.line.split()[:2]

    assert error_code(ec2.create_key_pair, KeyName=names['rsa']) == 'InvalidKeyPair.Duplicate'
    # Key pairs belong to an account: bob neither sees nor deletes alice's.
    bob = cloud_server.boto3_client('bob')
    assert error_code(bob.describe_key_pairs, KeyNames=[names['rsa']]) == 'InvalidKeyPair.NotFound'
    assert names['rsa'] not in [pair['KeyName'] for pair in bob.describe_key_pairs()['KeyPairs']]

    for name in names.values():
        assert ec2.delete_key_pair(KeyName=name)['Return'] is True
    assert error_code(ec2.describe_key_pairs, KeyNames=[names['rsa']]) == 'InvalidKeyPair.NotFound'
    remaining = [pair['KeyName'] for pair in ec2.describe_key_pairs()['KeyPairs']]
    assert not set(names.values()) & set(remaining)


def test_import_refuses_material_that_is_not_a_public_key(cloud_server, key_name):
    ec2 = cloud_server.boto3_client()
    assert error_code(ec2.import_key_pair, KeyName=key_name,
                      PublicKeyMaterial=b'ssh-rsa not-base64') == 'InvalidKey.Format'


def test_a_wrong_secret_is_an_auth_failure(cloud_server):
    ec2 = cloud_server.boto3_client(secret='0' * 40)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.describe_regions()
    assert raised.value.response['Error']['Code'] == 'AuthFailure'
    assert raised.value.response['ResponseMetadata']['HTTPStatusCode'] in (401, 403)


def test_a_request_signed_twenty_minutes_ago_has_expired(cloud_server, monkeypatch):
    ec2 = cloud_server.boto3_client()
    ec2.describe_regions()  # the same client, on time, is accepted
    stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, 'get_current_datetime', lambda *args, **kwargs: stale)
    assert error_code(ec2.describe_regions) == 'RequestExpired'
