"""Properties of signature verification: whatever botocore signs verifies, any change to a signed
parameter is caught, and no input whatsoever makes the verifier raise anything but EC2Error."""
import contextlib
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode

import pytest
from botocore.auth import SigV2Auth, SigV4Auth, SigV4QueryAuth
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ec2api.auth import SignedRequest, authenticate, request_path
from ec2api.errors import EC2Error
from tests.support.signing import ACCESS_KEY, REGION, SECRETS, botocore_signed, credentials, merged_params, rebuilt

# Names the signature schemes themselves use; a random parameter must not collide with them.
RESERVED = {'AWSAccessKeyId', 'Signature', 'SignatureVersion', 'SignatureMethod', 'Timestamp', 'Expires'}

param_names = st.text(min_size=1, max_size=12).filter(lambda name: name not in RESERVED
                                                      and not name.startswith('X-Amz-'))
param_values = st.text(max_size=30)
param_dicts = st.dictionaries(param_names, param_values, min_size=1, max_size=8)

SCHEMES = {
    'sigv4-post': (lambda: SigV4Auth(credentials(), 'ec2', REGION), 'POST'),
    'sigv4-get': (lambda: SigV4Auth(credentials(), 'ec2', REGION), 'GET'),
    'presigned': (lambda: SigV4QueryAuth(credentials(), 'ec2', REGION), 'GET'),
    'sigv2-post': (lambda: SigV2Auth(credentials()), 'POST'),
    'sigv2-get': (lambda: SigV2Auth(credentials()), 'GET'),
}
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def signed_by(scheme, params):
    make_signer, method = SCHEMES[scheme]
    return botocore_signed(make_signer(), method, params=params)


def with_param_changed(request, name, new_value):
    """The same request with one parameter's value replaced wherever it travels (query or body)."""
    def replace(pairs):
        return [(key, new_value if key == name else value) for key, value in pairs]
    query = urlencode(replace(_pairs(request.query_string)))
    body = urlencode(replace(_pairs(request.body.decode('utf-8')))).encode('utf-8')
    return rebuilt(request, query_string=query, body=body, params=merged_params(query, body))


def _pairs(encoded):
    return parse_qsl(encoded, keep_blank_values=True)


@pytest.mark.parametrize('scheme', SCHEMES)
@PROPERTY_SETTINGS
@given(params=param_dicts)
def test_whatever_botocore_signs_verifies(scheme, params):
    assert authenticate(signed_by(scheme, params), SECRETS.get, region=REGION) == ACCESS_KEY


@pytest.mark.parametrize('scheme', SCHEMES)
@PROPERTY_SETTINGS
@given(params=param_dicts, data=st.data())
def test_changing_any_one_param_value_fails(scheme, params, data):
    request = signed_by(scheme, params)
    name = data.draw(st.sampled_from(sorted(params)), label='changed parameter')
    new_value = data.draw(param_values.filter(lambda value: value != params[name]), label='new value')
    with pytest.raises(EC2Error) as failure:
        authenticate(with_param_changed(request, name, new_value), SECRETS.get, region=REGION)
    assert failure.value.code == 'AuthFailure'


# --- arbitrary input ------------------------------------------------------------------------------

# Fragments of real authentication data, so random requests often get past the first checks.
FRAGMENTS = ['AWS4-HMAC-SHA256 ', 'Credential=', ACCESS_KEY, '/20240517', '/' + REGION, '/ec2', '/aws4_request',
             ', ', ',', 'SignedHeaders=', 'host', ';', 'x-amz-date', 'Signature=', '0' * 64, '=', '%', '%ZZ',
             '20240517T103000Z', '2024-05-17T10:30:00Z', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date',
             'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature', '&', '+', 'HmacSHA256', 'HmacSHA1', '2',
             '\x00', '\udc80', 'é', '\u2028', ' ', '\t', '9' * 40, '..', '/']
loose_text = st.one_of(st.text(max_size=40),
                       st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=20).map(''.join))
header_names = st.sampled_from(['Authorization', 'authorization', 'X-Amz-Date', 'x-amz-date', 'Date', 'Host',
                                'X-Amz-Content-SHA256', 'Content-Type', 'User-Agent']) | st.text(max_size=10)
param_keys = st.sampled_from(['AWSAccessKeyId', 'Signature', 'SignatureVersion', 'SignatureMethod', 'Timestamp',
                              'Expires', 'Action', 'X-Amz-Algorithm']) | st.text(max_size=10)

NEAR_VALID_TIME = datetime(2024, 5, 17, 10, 31, tzinfo=timezone.utc)  # the dates used below are fresh


def near(valid):
    """Usually a valid value, sometimes garbage: random input that still reaches the deeper checks."""
    return st.just(valid) | loose_text


near_authorization = st.builds(
    '{}Credential={}/{}/{}/{}/{}{}SignedHeaders={}{}Signature={}'.format,
    near('AWS4-HMAC-SHA256 '), near(ACCESS_KEY), near('20240517'), near(REGION), near('ec2'),
    near('aws4_request'), near(', '), near('host;x-amz-date'), near(','), near('0' * 64))
near_v4_headers = st.fixed_dictionaries(
    {'Authorization': near_authorization, 'Host': near('localhost')},
    optional={'X-Amz-Date': near('20240517T103000Z'), 'Date': near('Fri, 17 May 2024 10:30:00 GMT'),
              'X-Amz-Content-SHA256': near('UNSIGNED-PAYLOAD')})
near_presign_query = st.fixed_dictionaries(
    {'X-Amz-Algorithm': near('AWS4-HMAC-SHA256'),
     'X-Amz-Credential': near(f'{ACCESS_KEY}/20240517/{REGION}/ec2/aws4_request'),
     'X-Amz-Date': near('20240517T103000Z'), 'X-Amz-SignedHeaders': near('host'),
     'X-Amz-Signature': near('0' * 64)},
    optional={'X-Amz-Expires': near('300'), 'Action': loose_text}).map(
    lambda query: urlencode(query, errors='surrogatepass'))
near_v2_params = st.fixed_dictionaries(
    {'AWSAccessKeyId': near(ACCESS_KEY), 'SignatureVersion': near('2'), 'SignatureMethod': near('HmacSHA256'),
     'Signature': near('c2lnbmF0dXJl')},
    optional={'Timestamp': near('2024-05-17T10:30:00Z'), 'Expires': near('2024-05-17T10:35:00.5+00:00')})

methods = st.sampled_from(['GET', 'POST', 'PUT', '']) | st.text(max_size=8)
random_requests = st.builds(
    SignedRequest, method=methods, path=loose_text, query_string=loose_text,
    headers=st.dictionaries(header_names, loose_text, max_size=8), body=st.binary(max_size=64),
    params=st.dictionaries(param_keys, loose_text, max_size=8))
near_v4_requests = st.builds(
    SignedRequest, method=methods, path=near('/'), query_string=loose_text, headers=near_v4_headers,
    body=st.binary(max_size=16), params=st.dictionaries(param_keys, loose_text, max_size=4))
near_presigned_requests = st.builds(
    SignedRequest, method=methods, path=near('/'), query_string=near_presign_query,
    headers=st.fixed_dictionaries({'Host': near('localhost')}), body=st.just(b'') | st.binary(max_size=8),
    params=st.just({}))
near_v2_requests = st.builds(
    SignedRequest, method=methods, path=near('/'), query_string=st.just(''),
    headers=st.dictionaries(header_names, loose_text, max_size=3), body=st.just(b''), params=near_v2_params)
arbitrary_requests = random_requests | near_v4_requests | near_presigned_requests | near_v2_requests


class _ErrorRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def foreseen_failures_only():
    """Fail if the verifier's last-resort guard had to turn an unforeseen exception into an EC2Error."""
    handler = _ErrorRecords()
    logger = logging.getLogger('ec2api.auth')
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not handler.records, handler.records[0].exc_text or handler.records[0].getMessage()


def authenticate_expecting_client_error(request, now=None):
    """Authenticate; a failure must be a foreseen EC2Error with a 4xx status. Returns the error."""
    with foreseen_failures_only():
        try:
            authenticate(request, SECRETS.get, region=REGION, now=now)
        except EC2Error as error:
            assert 400 <= error.status < 500
            return error
    return None


@settings(max_examples=800, deadline=None)
@given(request=arbitrary_requests)
def test_arbitrary_requests_only_ever_raise_ec2_errors(request):
    error = authenticate_expecting_client_error(request, now=NEAR_VALID_TIME)
    assert error is not None, 'a random request was authenticated'


@pytest.mark.parametrize('scheme', SCHEMES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_one_corrupted_part_of_a_real_request_only_ever_raises_ec2_errors(scheme, data):
    request = signed_by(scheme, {'Action': 'DescribeRegions', 'Version': '2016-11-15'})
    part = data.draw(st.sampled_from(['header', 'query', 'param', 'path']), label='corrupted part')
    garbage = data.draw(loose_text, label='garbage')
    if part == 'header':
        name = data.draw(st.sampled_from(sorted(request.headers)), label='header')
        assume(garbage != request.headers[name])
        corrupted = rebuilt(request, headers=dict(request.headers, **{name: garbage}))
    elif part == 'query':
        assume(garbage != request.query_string)
        corrupted = rebuilt(request, query_string=garbage)
    elif part == 'param':
        name = data.draw(st.sampled_from(sorted(request.params)), label='param')
        assume(garbage != request.params[name])
        corrupted = rebuilt(request, params=dict(request.params, **{name: garbage}))
    else:
        assume(garbage not in (request.path, ''))
        corrupted = rebuilt(request, path=garbage)
    # Some corruptions are harmless (an unsigned header, a parameter SigV4 does not read), so
    # success is allowed; what is not allowed is any other exception, or the last-resort guard.
    authenticate_expecting_client_error(corrupted)


# --- the signed path, as a WSGI server passes it on ------------------------------------------------

def wsgi_path_info(raw_path):
    """PATH_INFO as PEP 3333 has it: percent-decoded, its bytes carried as latin-1."""
    return unquote_to_bytes(raw_path).decode('latin-1')


@PROPERTY_SETTINGS
@given(segments=st.lists(st.text(alphabet=st.characters(blacklist_characters='/', codec='utf-8'), min_size=1,
                                 max_size=12), max_size=4))
def test_the_path_an_sdk_encoded_is_rebuilt_from_the_decoded_path_info(segments):
    raw = '/' + '/'.join(quote(segment.encode('utf-8'), safe='~') for segment in segments)  # as botocore does
    assert request_path({'PATH_INFO': wsgi_path_info(raw)}) == raw


def test_a_raw_request_line_is_preferred_when_the_server_keeps_one():
    raw = '/upload/a%2Fb%20c'
    assert request_path({'RAW_URI': raw + '?x=1', 'PATH_INFO': wsgi_path_info(raw)}) == raw
    assert request_path({'PATH_INFO': ''}) == '/'
