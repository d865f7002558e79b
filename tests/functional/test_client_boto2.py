"""boto 2.49, still behind many old scripts: its default SigV4 signing, and SigV2 forced the way
those scripts' subclasses do. It sends Version=2014-10-01 and signs `Host` without the port."""
import pytest
from boto.exception import EC2ResponseError

from tests.support.boto2 import connect as connect_as

from .keys import created_key_fingerprint

pytestmark = pytest.mark.clients


@pytest.fixture(params=['sigv4', 'sigv2'])
def connect(request, cloud_server):
    def connect(user='alice', secret=None):
        return connect_as(cloud_server, cloud_server.users[user], request.param, secret)
    return connect


def error_code(call, *args):
    with pytest.raises(EC2ResponseError) as raised:
        call(*args)
    return raised.value.error_code


def test_regions_and_zones(connect, cloud_config):
    connection = connect()
    assert [region.name for region in connection.get_all_regions()] == [cloud_config.region]
    assert [(zone.name, zone.state) for zone in connection.get_all_zones()] == [
        (name, 'available') for name in cloud_config.zones]


def test_instance_types_in_the_eucalyptus_shape(connect, cloud_config):
    # boto's get_all_instance_types reads Eucalyptus's <item><name/><cpu/><memory/><disk/>, and would
    # turn every <item> of an AWS-shaped instanceTypeSet into an empty object: its API version gets
    # the Eucalyptus shape alone.
    types = connect().get_all_instance_types()
    assert {kind.name: (int(kind.cores), int(kind.memory), int(kind.disk)) for kind in types} == {
        name: (kind.vcpus, kind.memory_mib, kind.disk_gib) for name, kind in cloud_config.instance_types.items()}


def test_images(connect, cloud_server, public_image):
    [image] = connect('bob').get_all_images(image_ids=[public_image])
    assert (image.id, image.name, image.state, image.is_public, image.type) == (
        public_image, 'tiny-public', 'available', True, 'machine')
    assert image.owner_id == cloud_server.users['alice']['account_id']
    assert public_image not in [image.id for image in connect('bob').get_all_images(owners=['self'])]
    assert error_code(connect().get_all_images, ['ami-0123456789abcdef0']) == 'InvalidAMIID.NotFound'


def test_key_pair_cycle(connect, key_name, rsa_public_key):
    connection = connect()
    created = connection.create_key_pair(key_name)
    assert created.fingerprint == created_key_fingerprint(created.material)
    imported = connection.import_key_pair(f'{key_name}-imported', rsa_public_key.line.encode())
    assert imported.fingerprint == rsa_public_key.fingerprint

    names = [key_name, f'{key_name}-imported']
    described = connection.get_all_key_pairs(keynames=names)
    assert {pair.name: pair.fingerprint for pair in described} == {
        key_name: created.fingerprint, f'{key_name}-imported': rsa_public_key.fingerprint}
    assert error_code(connection.create_key_pair, key_name) == 'InvalidKeyPair.Duplicate'
    assert error_code(connect('bob').get_all_key_pairs, [key_name]) == 'InvalidKeyPair.NotFound'

    for name in names:
        assert connection.delete_key_pair(name) is True
    assert error_code(connection.get_all_key_pairs, [key_name]) == 'InvalidKeyPair.NotFound'


def test_a_wrong_secret_is_an_auth_failure(connect):
    assert error_code(connect(secret='0' * 40).get_all_regions) == 'AuthFailure'
