"""Signature Version 2 requests built here from the published algorithm, sent with `requests`: the
way old tools sign, on time and twenty minutes late, as GET with the port in `Host` (libcloud) and
as POST without it (boto 2)."""
import base64
import datetime
import hashlib
import hmac
import urllib.parse
import xml.etree.ElementTree as ElementTree

import pytest
import requests

pytestmark = pytest.mark.clients

EC2_NAMESPACE = '{http://ec2.amazonaws.com/doc/2014-10-01/}'


def signed_params(cloud_server, method, host, clock, algorithm='HmacSHA256', user='alice'):
    credentials = cloud_server.users[user]
    params = {
        'Action': 'DescribeRegions',
        'Version': '2014-10-01',
        'AWSAccessKeyId': credentials['access_key_id'],
        'SignatureVersion': '2',
        'SignatureMethod': algorithm,
        'Timestamp': clock.strftime('%Y-%m-%dT%H:%M:%SZ'),
    }
    query = '&'.join(f'{urllib.parse.quote(key, safe="-_.~")}={urllib.parse.quote(value, safe="-_.~")}'
                     for key, value in sorted(params.items()))
    digest = hashlib.sha256 if algorithm == 'HmacSHA256' else hashlib.sha1
    signature = hmac.new(credentials['secret_access_key'].encode(),
                         f'{method}\n{host}\n/\n{query}'.encode(), digest).digest()
    params['Signature'] = base64.b64encode(signature).decode()
    return params


def send(cloud_server, method, with_port, clock, **kwargs):
    host = f'{cloud_server.host}:{cloud_server.port}' if with_port else cloud_server.host
    params = signed_params(cloud_server, method, host, clock, **kwargs)
    where = {'params': params} if method == 'GET' else {'data': params}
    return requests.request(method, f'{cloud_server.endpoint}/', headers={'Host': host}, timeout=30, **where)


def error_code(response):
    return ElementTree.fromstring(response.content).findtext('Errors/Error/Code')


def now():
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.mark.parametrize('method, with_port', [('GET', True), ('POST', False)])
def test_on_time_it_is_accepted(cloud_server, cloud_config, method, with_port):
    response = send(cloud_server, method, with_port, now())
    assert response.status_code == 200, response.text
    regions = ElementTree.fromstring(response.content).findall(f'{EC2_NAMESPACE}regionInfo/{EC2_NAMESPACE}item')
    assert [region.findtext(f'{EC2_NAMESPACE}regionName') for region in regions] == [cloud_config.region]


def test_hmac_sha1_is_accepted(cloud_server):
    response = send(cloud_server, 'GET', True, now(), algorithm='HmacSHA1')
    assert response.status_code == 200, response.text


@pytest.mark.parametrize('method, with_port', [('GET', True), ('POST', False)])
def test_twenty_minutes_late_it_has_expired(cloud_server, method, with_port):
    response = send(cloud_server, method, with_port, now() - datetime.timedelta(minutes=20))
    assert response.status_code in (400, 401, 403)
    assert error_code(response) == 'RequestExpired'


def test_signed_for_another_host_it_is_refused(cloud_server):
    params = signed_params(cloud_server, 'GET', 'elsewhere.example', now())
    response = requests.get(f'{cloud_server.endpoint}/', params=params, timeout=30)
    assert error_code(response) == 'AuthFailure'
