"""Signed requests for the verifier's tests: the key, the scope, and requests as botocore signs them
and as the web layer hands them over."""
import hashlib
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ec2api.auth import SignedRequest

ACCESS_KEY = 'AKIDEXAMPLE'
SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
SECRETS = {ACCESS_KEY: SECRET}
ENDPOINT = 'http://127.0.0.1:8773/'
FORM = 'application/x-www-form-urlencoded; charset=utf-8'
DESCRIBE = {'Action': 'DescribeImages', 'Version': '2016-11-15', 'ImageId.1': 'ami-12345678',
            'Filter.1.Name': 'name', 'Filter.1.Value.1': 'my image (v2) + ~test/ä'}
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
# The clock every hand-signed request below was signed at.
SIGNED_AT = datetime(2024, 5, 17, 10, 30, 0, tzinfo=timezone.utc)
AMZ_DATE = SIGNED_AT.strftime('%Y%m%dT%H%M%SZ')


def merged_params(query, body):
    """Query and form body decoded and merged, as the web layer hands them to the verifier."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    params.update(parse_qsl(body.decode('utf-8'), keep_blank_values=True))
    return params


def received(prepared, host=None):
    """The SignedRequest a server would see for a botocore prepared request."""
    url = urlsplit(prepared.url)
    body = prepared.body or b''
    body = body.encode('utf-8') if isinstance(body, str) else body
    headers = dict(prepared.headers)
    # The HTTP client adds Host from the URL; botocore signs the same value.
    headers['Host'] = host or url.netloc
    return SignedRequest(method=prepared.method, path=url.path or '/', query_string=url.query,
                         headers=headers, body=body, params=merged_params(url.query, body))


def botocore_signed(signer, method='POST', params=DESCRIBE, url=ENDPOINT, headers=None):
    """Sign with a botocore signer: POST puts params in a form body, GET in the query string."""
    headers = dict(headers or {})
    if method == 'POST':
        headers.setdefault('Content-Type', FORM)
        request = AWSRequest(method=method, url=url, data=dict(params), headers=headers)
    else:
        request = AWSRequest(method=method, url=url, params=dict(params), headers=headers)
    signer.add_auth(request)
    return received(request.prepare())


def credentials(secret=SECRET, key=ACCESS_KEY):
    return Credentials(key, secret)


REGION = 'reservoir-1'


def sigv4(region=REGION, service='ec2', **kwargs):
    return SigV4Auth(credentials(**kwargs), service, region)


def rebuilt(request, **changes):
    fields = dict(method=request.method, path=request.path, query_string=request.query_string,
                  headers=request.headers, body=request.body, params=request.params)
    fields.update(changes)
    return SignedRequest(**fields)
