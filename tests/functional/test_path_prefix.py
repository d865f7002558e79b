"""The endpoint behind a reverse proxy that publishes it under /cloud and strips that path: clients
sign the path they send, and [server] path_prefix tells the server what it was."""
import boto3
import botocore.exceptions
import pytest
import requests

from backend.config import ConfigError, load_config
from tests.support.prefix_proxy import cloud_behind_proxy
from tests.support.server import REGION

PREFIX = '/cloud'


@pytest.fixture(scope='module')
def behind_proxy(tmp_path_factory):
    with cloud_behind_proxy(tmp_path_factory.mktemp('prefix'), ['alice'], PREFIX) as (live, proxy):
        yield live, proxy


def client(url, credentials, version='v4'):
    from botocore.config import Config
    return boto3.client('ec2', endpoint_url=f'{url}/', region_name=REGION,
                        aws_access_key_id=credentials['access_key_id'],
                        aws_secret_access_key=credentials['secret_access_key'],
                        config=Config(signature_version=version, retries={'max_attempts': 0}))


def test_clients_through_the_proxy_are_served(behind_proxy):
    live, proxy = behind_proxy
    ec2 = client(proxy.url, live.users['alice'])
    [instance] = ec2.run_instances(ImageId=live.image_id, InstanceType='t1.micro', MinCount=1, MaxCount=1)['Instances']
    listed = ec2.describe_instances(InstanceIds=[instance['InstanceId']])['Reservations'][0]['Instances']
    assert listed[0]['InstanceId'] == instance['InstanceId']
    # The server saw the paths without the prefix, yet the signatures over /cloud/ held.
    assert proxy.forwarded and all(path == '/' for method, path in proxy.forwarded if method == 'POST')
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])


def test_the_console_is_published_under_the_prefix(behind_proxy):
    live, proxy = behind_proxy
    page = requests.get(f'{proxy.url}/console/')
    assert page.status_code == 200 and 'js/main.js' in page.text
    assert requests.get(f'{proxy.url}/console/config.json').json()['api'] == '../'
    moved = requests.get(f'{proxy.url}/console', allow_redirects=False)
    assert moved.status_code == 301 and moved.headers['Location'] == 'console/'   # relative: stays under /cloud


def test_a_request_that_bypasses_the_proxy_does_not_verify(behind_proxy):
    live, _ = behind_proxy
    # Signed for /, but the server knows its clients sign /cloud/: the signature is refused.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client(live.endpoint, live.users['alice']).describe_regions()
    assert refused.value.response['Error']['Code'] in ('SignatureDoesNotMatch', 'AuthFailure')


@pytest.mark.parametrize('prefix', ['cloud', '/cloud/', '/a b', '/cl%6fud', '/../x', '/ü'])
def test_a_prefix_clients_would_encode_is_refused(tmp_path, prefix):
    with pytest.raises(ConfigError, match='path_prefix'):
        load_config({'RESERVOIR_HOME': str(tmp_path), 'RESERVOIR_SERVER_PATH_PREFIX': prefix})


def test_a_nested_prefix_is_accepted(tmp_path):
    config = load_config({'RESERVOIR_HOME': str(tmp_path), 'RESERVOIR_SERVER_PATH_PREFIX': '/ops/cloud-1'})
    assert config.server.path_prefix == '/ops/cloud-1'
