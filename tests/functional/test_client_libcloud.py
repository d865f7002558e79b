"""apache-libcloud's EC2 drivers: they send GET requests with the parameters in the query string,
and parse responses by namespace, so a namespace without AWS's trailing slash would silently
yield nothing. Three configurations: the EC2 driver with its SigV2 default, the EC2 driver with
SigV4, and the Eucalyptus driver (SigV2, Eucalyptus-shaped instance types)."""
import time
import types

import libcloud.common.aws
import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.drivers.ec2 import NAMESPACE, EC2NodeDriver, EucNodeDriver
from libcloud.compute.types import KeyPairDoesNotExistError
from libcloud.utils.xml import findall, findtext

from .keys import created_key_fingerprint

pytestmark = pytest.mark.clients

DRIVERS = ['ec2-sigv2', 'ec2-sigv4', 'eucalyptus']


@pytest.fixture(params=DRIVERS)
def connect(request, cloud_server):
    def connect(user='alice', secret=None):
        credentials = cloud_server.users[user]
        key, secret = credentials['access_key_id'], secret or credentials['secret_access_key']
        where = {'secure': False, 'host': cloud_server.host, 'port': cloud_server.port}
        if request.param == 'eucalyptus':
            driver = EucNodeDriver(key, secret, path='/', **where)
        else:
            driver = EC2NodeDriver(key, secret, signature_version=request.param[-1], **where)
            # libcloud accepts only AWS's region names; the region it signs SigV4 with and filters
            # availability zones by is this attribute, so point it at ours.
            driver.region_name = cloud_server.region
        assert driver.connection.signature_version == ('4' if request.param == 'ec2-sigv4' else '2')
        return driver
    connect.kind = request.param
    return connect


def call(driver, action, **params):
    """An action libcloud has no method for, sent and parsed by libcloud's own connection."""
    return driver.connection.request(driver.path, params={'Action': action, **params}).object


def test_regions(connect, cloud_config):
    regions = findall(call(connect(), 'DescribeRegions'), 'regionInfo/item', NAMESPACE)
    assert [findtext(region, 'regionName', NAMESPACE) for region in regions] == [cloud_config.region]


def test_availability_zones(connect, cloud_config):
    driver = connect()
    if connect.kind == 'eucalyptus':
        driver.region_name = cloud_config.region  # the driver filters zones by region name too
    zones = driver.ex_list_availability_zones()
    assert [(zone.name, zone.zone_state, zone.region_name) for zone in zones] == [
        (name, 'available', cloud_config.region) for name in cloud_config.zones]


def test_instance_types(connect, cloud_config):
    driver = connect()
    if connect.kind == 'eucalyptus':
        # list_sizes asks the cloud (the EC2 driver's list_sizes is a built-in price list).
        sizes = {size.id: (size.extra['cpu'], size.ram, size.disk) for size in driver.list_sizes()}
    else:
        items = findall(call(driver, 'DescribeInstanceTypes'), 'instanceTypeSet/item', NAMESPACE)
        sizes = {findtext(item, 'instanceType', NAMESPACE): (
            int(findtext(item, 'vCpuInfo/defaultVCpus', NAMESPACE)),
            int(findtext(item, 'memoryInfo/sizeInMiB', NAMESPACE)),
            int(findtext(item, 'instanceStorageInfo/totalSizeInGB', NAMESPACE))) for item in items}
    assert sizes == {name: (kind.vcpus, kind.memory_mib, kind.disk_gib)
                     for name, kind in cloud_config.instance_types.items()}


def test_images(connect, cloud_server, public_image):
    [image] = connect('bob').list_images(ex_image_ids=[public_image])
    assert (image.id, image.name, image.extra['state'], image.extra['is_public']) == (
        public_image, 'tiny-public', 'available', 'true')
    assert image.extra['owner_id'] == cloud_server.users['alice']['account_id']
    assert public_image in [image.id for image in connect('alice').list_images(ex_owner='self')]
    assert public_image not in [image.id for image in connect('bob').list_images(ex_owner='self')]


def test_key_pair_cycle(connect, key_name, rsa_public_key):
    driver = connect()
    created = driver.create_key_pair(key_name)
    assert created.fingerprint == created_key_fingerprint(created.private_key)
    imported = driver.import_key_pair_from_string(f'{key_name}-imported', rsa_public_key.line)
    assert imported.fingerprint == rsa_public_key.fingerprint

    # get_key_pair sends a bare KeyName (not KeyName.1), as older EC2 API versions allowed.
    assert driver.get_key_pair(key_name).fingerprint == created.fingerprint
    listed = {pair.name: pair.fingerprint for pair in driver.list_key_pairs()}
    assert listed[key_name] == created.fingerprint
    assert listed[f'{key_name}-imported'] == rsa_public_key.fingerprint
    # libcloud takes the missing key's name from between the quotes of AWS's message.
    with pytest.raises(KeyPairDoesNotExistError) as raised:
        connect('bob').get_key_pair(key_name)
    assert raised.value.name == key_name

    for pair in (created, imported):
        assert driver.delete_key_pair(pair) is True
    with pytest.raises(KeyPairDoesNotExistError):
        driver.get_key_pair(key_name)


def test_a_wrong_secret_is_an_auth_failure(connect):
    with pytest.raises(InvalidCredsError) as raised:
        connect(secret='0' * 40).list_key_pairs()
    assert 'AuthFailure' in str(raised.value)


def test_a_sigv2_request_stamped_twenty_minutes_ago_has_expired(cloud_server, monkeypatch):
    credentials = cloud_server.users['alice']
    driver = EucNodeDriver(credentials['access_key_id'], credentials['secret_access_key'], path='/',
                           secure=False, host=cloud_server.host, port=cloud_server.port)
    driver.list_key_pairs()  # on time, the same driver is accepted
    # libcloud stamps SigV2 requests with time.gmtime(); give its module a clock 20 minutes slow.
    slow_clock = types.SimpleNamespace(strftime=time.strftime, gmtime=lambda: time.gmtime(time.time() - 1200))
    monkeypatch.setattr(libcloud.common.aws, 'time', slow_clock)
    with pytest.raises(BaseHTTPError) as raised:
        driver.list_key_pairs()
    assert 'RequestExpired' in str(raised.value)
