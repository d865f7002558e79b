"""Signature verification against botocore's own signers, AWS's published vectors and the exact
request shapes the other clients were seen sending (boto 2, libcloud, the JS SDK, euca2ools)."""
import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from botocore.auth import SigV2Auth, SigV4QueryAuth
from werkzeug.datastructures import Headers

from ec2api import auth
from ec2api.auth import SignedRequest, authenticate
from ec2api.errors import EC2Error
from tests.support.signing import (ACCESS_KEY, AMZ_DATE, DESCRIBE, EMPTY_SHA256, REGION, SECRET, SECRETS, SIGNED_AT,
                                   botocore_signed, credentials, merged_params, rebuilt, sigv4)


def with_headers(request, **changes):
    headers = dict(request.headers)
    headers.update(changes)
    return rebuilt(request, headers=headers)


def rfc3986(text):
    return quote(text, safe='-_.~')


def hand_signed_v4(method, headers, signed_headers, *, query_params=None, query_string='', body=b'',
                   payload_hash=None, path='/', region=REGION, service='ec2', amz_date=AMZ_DATE,
                   separator=', ', secret=SECRET, key=ACCESS_KEY, scope_date=None):
    """A SigV4 request signed straight from the specification, the way a given client lays it out.

    The canonical query comes from the parameter dict, not from the query string that is sent,
    so a client's unsorted or differently escaped query exercises the verifier's canonicalisation.
    """
    query_params = query_params or {}
    lower = {name.lower(): value for name, value in headers.items()}
    canonical_request = '\n'.join([
        method, path,
        '&'.join(sorted(f'{rfc3986(k)}={rfc3986(v)}' for k, v in query_params.items())),
        ''.join(f"{name}:{' '.join(lower[name].split())}\n" for name in signed_headers),
        ';'.join(signed_headers),
        payload_hash or hashlib.sha256(body).hexdigest(),
    ])
    scope_date = scope_date or amz_date[:8]
    scope = f'{scope_date}/{region}/{service}/aws4_request'
    string_to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    signing_key = ('AWS4' + secret).encode()
    for part in (scope_date, region, service, 'aws4_request'):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers = dict(headers)
    headers['Authorization'] = separator.join([f'AWS4-HMAC-SHA256 Credential={key}/{scope}',
                                               f"SignedHeaders={';'.join(signed_headers)}",
                                               f'Signature={signature}'])
    return SignedRequest(method=method, path=path, query_string=query_string, headers=headers, body=body,
                         params=merged_params(query_string, body))


def hand_signed_v2(method, host, params, *, digest=hashlib.sha256, signature_method='HmacSHA256',
                   timestamp=SIGNED_AT.strftime('%Y-%m-%dT%H:%M:%SZ'), in_body=False, path='/',
                   secret=SECRET, host_header=None, time_param='Timestamp'):
    """A SigV2 request signed from the specification: params, then Signature, in query or body."""
    params = dict(params, AWSAccessKeyId=ACCESS_KEY, SignatureVersion='2', SignatureMethod=signature_method)
    params[time_param] = timestamp
    canonical = '&'.join(f'{rfc3986(k)}={rfc3986(params[k])}' for k in sorted(params))
    string_to_sign = f'{method}\n{host.lower()}\n{path}\n{canonical}'
    mac = hmac.new(secret.encode(), string_to_sign.encode(), digest).digest()
    params['Signature'] = base64.b64encode(mac).decode()
    encoded = urlencode(params)
    query, body = ('', encoded.encode()) if in_body else (encoded, b'')
    return SignedRequest(method=method, path=path, query_string=query, headers={'Host': host_header or host},
                         body=body, params=merged_params(query, body))


def verified(request, now=None):
    return authenticate(request, SECRETS.get, region=REGION, now=now)


def rejected(request, now=None):
    with pytest.raises(EC2Error) as failure:
        authenticate(request, SECRETS.get, region=REGION, now=now)
    return failure.value


# --- AWS's published SigV4 test-suite vectors ---------------------------------------------------

SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
SUITE_SCOPE = 'Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request'


@pytest.mark.parametrize('method, query, extra_headers, body, signed, signature', [
    ('GET', '', {}, b'', 'host;x-amz-date',
     '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'),          # get-vanilla
    ('GET', 'Param2=value2&Param1=value1', {}, b'', 'host;x-amz-date',
     'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500'),          # query order
    ('POST', '', {'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '13',
                  'X-Amz-Content-SHA256': hashlib.sha256(b'Param1=value1').hexdigest()},
     b'Param1=value1', 'content-length;content-type;host;x-amz-content-sha256;x-amz-date',
     'd3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b'),          # signed form body
])
def test_aws_test_suite_vectors_verify(method, query, extra_headers, body, signed, signature):
    headers = {'Host': 'example.amazonaws.com', 'X-Amz-Date': '20150830T123600Z', **extra_headers,
               'Authorization': f'AWS4-HMAC-SHA256 {SUITE_SCOPE}, SignedHeaders={signed}, Signature={signature}'}
    request = SignedRequest(method, '/', query, headers, body, merged_params(query, body))
    # The vectors are scoped to us-east-1 and the service 'service', which this cloud refuses:
    # the signature itself is checked below the scope check.
    assert rejected(request, now=SUITE_TIME).code == 'AuthFailure'
    assert suite_signature_matches(request)
    tampered = signature[:-1] + ('0' if signature[-1] != '0' else '1')
    headers['Authorization'] = headers['Authorization'].replace(signature, tampered)
    assert not suite_signature_matches(rebuilt(request, headers=headers))


def suite_signature_matches(request):
    claim = auth._read_claim(request, SUITE_TIME, timedelta(minutes=15))
    return claim.matches(SECRET)


# --- SigV4 from botocore (boto3, awscli) ----------------------------------------------------------

@pytest.mark.parametrize('method', ['POST', 'GET'])
def test_botocore_sigv4_verifies(method):
    assert verified(botocore_signed(sigv4(), method)) == ACCESS_KEY


@pytest.mark.parametrize('region', ['us-east-1', 'eu-west-3', 'RegionOne', '0'])
def test_a_signature_scoped_to_another_region_is_refused(region):
    # A signature made for another cloud's region must not be replayable here, even with the right key.
    error = rejected(botocore_signed(sigv4(region=region)))
    assert error.code == 'AuthFailure' and 'scoped to a valid region' in error.message
    assert REGION in error.message


@pytest.mark.parametrize('service', ['s3', '127', 'EC2', 'iam'])
def test_a_signature_scoped_to_another_service_is_refused(service):
    # boto 2 pointed at an IP address derives service '127' from the host: its users must configure it.
    error = rejected(botocore_signed(sigv4(service=service)))
    assert error.code == 'AuthFailure' and "scoped to correct service: 'ec2'" in error.message


def test_a_presigned_request_scoped_to_another_region_is_refused():
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', 'us-east-1', expires=60), method='GET')
    assert rejected(request).code == 'AuthFailure'


def test_date_header_is_used_when_x_amz_date_is_absent():
    # botocore signs with the Date header instead of X-Amz-Date when the request already has one.
    request = botocore_signed(sigv4(), headers={'Date': 'placeholder'})
    assert not any(name.lower() == 'x-amz-date' for name in request.headers)
    assert verified(request) == ACCESS_KEY


def test_werkzeug_headers_object_is_accepted():
    request = botocore_signed(sigv4())
    assert verified(rebuilt(request, headers=Headers(list(request.headers.items())))) == ACCESS_KEY


def test_path_other_than_root_is_signed():
    request = botocore_signed(sigv4(), url='http://127.0.0.1:8773/services/Cloud/')
    assert request.path == '/services/Cloud/'
    assert verified(request) == ACCESS_KEY
    assert rejected(rebuilt(request, path='/services/Eucalyptus/')).code == 'AuthFailure'


@pytest.mark.parametrize('path, canonical', [('/services/Cloud%20Stack/', '/services/Cloud%2520Stack/'),
                                             ('/services/./Eucalyptus/../Cloud', '/services/Cloud')])
def test_path_is_canonicalised_as_botocore_does(path, canonical):
    signer = sigv4()
    request = botocore_signed(signer, url=f'http://127.0.0.1:8773{path}')
    assert request.path == path
    assert verified(request) == ACCESS_KEY
    assert auth._canonical_uri(path) == canonical


def test_signing_key_is_cached_per_scope():
    request = botocore_signed(sigv4())
    verified(request)
    hits = auth._v4_signing_key.cache_info().hits
    verified(request)
    assert auth._v4_signing_key.cache_info().hits == hits + 1


# --- SigV4 as the other clients lay it out -------------------------------------------------------

def test_boto2_style_commas_without_spaces():
    body = urlencode({'Action': 'DescribeRegions', 'Version': '2014-10-01'}).encode()
    headers = {'Host': '127.0.0.1:8773', 'X-Amz-Date': AMZ_DATE,
               'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8', 'Content-Length': str(len(body))}
    request = hand_signed_v4('POST', headers, ['host', 'x-amz-date'], body=body, separator=',')
    assert ',SignedHeaders=' in request.headers['Authorization']
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY


def test_libcloud_style_get_with_unsorted_query_and_upper_case_headers():
    params = {'Action': 'DescribeImages', 'ImageId.1': 'ami-1', 'Version': '2016-11-15', 'Owner.1': 'self'}
    unsorted = 'Version=2016-11-15&Action=DescribeImages&Owner.1=self&ImageId.1=ami-1'
    headers = {'Host': '127.0.0.1:8773', 'X-AMZ-Date': AMZ_DATE, 'X-AMZ-Content-SHA256': EMPTY_SHA256,
               'User-Agent': 'libcloud/3.9.1 (Amazon EC2) ', 'Accept-Encoding': 'gzip,deflate'}
    signed = ['accept-encoding', 'host', 'user-agent', 'x-amz-content-sha256', 'x-amz-date']
    request = hand_signed_v4('GET', headers, signed, query_params=params, query_string=unsorted,
                             payload_hash=EMPTY_SHA256)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    tampered = unsorted.replace('self', 'amazon')
    assert rejected(rebuilt(request, query_string=tampered), now=SIGNED_AT).code == 'AuthFailure'


def test_js_sdk_v3_style_lower_case_headers_and_many_signed():
    body = urlencode({'Action': 'DescribeInstances', 'Version': '2016-11-15'}).encode()
    headers = {'host': '127.0.0.1:8773', 'x-amz-date': AMZ_DATE,
               'x-amz-content-sha256': hashlib.sha256(body).hexdigest(),
               'content-type': 'application/x-www-form-urlencoded', 'content-length': str(len(body)),
               'amz-sdk-invocation-id': 'b7a6b1f8-1c39-4c1a-9a3f-3b9c1d2e4f50', 'amz-sdk-request': 'attempt=1; max=3',
               'x-amz-user-agent': 'aws-sdk-js/3.1169.0', 'user-agent': 'aws-sdk-js/3.1169.0 ua/2.1 os/linux'}
    signed = ['amz-sdk-invocation-id', 'amz-sdk-request', 'content-length', 'content-type', 'host',
              'x-amz-content-sha256', 'x-amz-date', 'x-amz-user-agent']
    request = hand_signed_v4('POST', headers, signed, body=body)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    changed = dict(request.headers, **{'amz-sdk-request': 'attempt=2; max=3'})
    assert rejected(rebuilt(request, headers=changed), now=SIGNED_AT).code == 'AuthFailure'


def test_euca2ools_style_services_path():
    body = urlencode({'Action': 'DescribeRegions', 'Version': '2015-10-01'}).encode()
    headers = {'Host': 'cloud.example:8773', 'X-Amz-Date': AMZ_DATE, 'Accept': '*/*',
               'Accept-Encoding': 'gzip, deflate', 'Content-Length': str(len(body)),
               'Content-Type': 'application/x-www-form-urlencoded',
               'X-Amz-Content-SHA256': hashlib.sha256(body).hexdigest()}
    signed = ['accept', 'accept-encoding', 'content-length', 'content-type', 'host', 'x-amz-content-sha256',
              'x-amz-date']
    request = hand_signed_v4('POST', headers, signed, body=body, path='/services/Eucalyptus')
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY


def test_repeated_header_values_are_joined_with_commas():
    body = b'Action=DescribeRegions'
    headers = {'Host': '127.0.0.1', 'X-Amz-Date': AMZ_DATE, 'X-Extra': 'one,two'}
    request = hand_signed_v4('POST', headers, ['host', 'x-amz-date', 'x-extra'], body=body)
    repeated = Headers([(name, value) for name, value in request.headers.items() if name != 'X-Extra'])
    repeated.add('X-Extra', 'one')
    repeated.add('x-extra', ' two ')
    assert verified(rebuilt(request, headers=repeated), now=SIGNED_AT) == ACCESS_KEY


# --- SigV4 presigned query -------------------------------------------------------------------------

def test_botocore_presigned_query_verifies():
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', REGION, expires=300), 'GET')
    assert 'X-Amz-Signature=' in request.query_string and 'Authorization' not in request.headers
    assert verified(request) == ACCESS_KEY


def test_presigned_query_with_unsigned_payload_verifies():
    query = {'Action': 'DescribeRegions', 'Version': '2016-11-15', 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
             'X-Amz-Credential': f'{ACCESS_KEY}/{AMZ_DATE[:8]}/{REGION}/ec2/aws4_request',
             'X-Amz-Date': AMZ_DATE, 'X-Amz-Expires': '60', 'X-Amz-SignedHeaders': 'host'}
    signed = hand_signed_v4('GET', {'Host': 'localhost'}, ['host'], query_params=query,
                            payload_hash='UNSIGNED-PAYLOAD')
    signature = signed.headers['Authorization'].rsplit('Signature=', 1)[1]
    query_string = urlencode(dict(query, **{'X-Amz-Signature': signature}))
    request = SignedRequest('GET', '/', query_string, {'Host': 'localhost'}, b'', merged_params(query_string, b''))
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    assert rejected(request, now=SIGNED_AT + timedelta(seconds=61)).code == 'RequestExpired'


@pytest.mark.parametrize('expires, code', [(604800, None), (604801, 'AuthFailure')])
def test_presigned_query_is_valid_for_at_most_a_week(expires, code):
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', REGION, expires=expires), 'GET')
    if code:
        assert rejected(request).code == code
    else:
        assert verified(request) == ACCESS_KEY


def test_expired_presigned_query_is_rejected():
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', REGION, expires=60), 'GET')
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    error = rejected(request, now=later)
    assert (error.code, error.status) == ('RequestExpired', 400)


def test_presigned_query_with_a_body_is_rejected():
    # The body is outside a presigned signature; parameters in it would be unauthenticated.
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', REGION), 'GET')
    smuggled = rebuilt(request, method='GET', body=b'InstanceId.1=i-someone-else')
    assert rejected(smuggled).code == 'AuthFailure'


@pytest.mark.parametrize('field, value', [('X-Amz-Expires', '3601'), ('Action', 'RunInstances')])
def test_tampered_presigned_query_is_rejected(field, value):
    request = botocore_signed(SigV4QueryAuth(credentials(), 'ec2', REGION, expires=3600), 'GET',
                              params={'Action': 'DescribeRegions', 'Version': '2016-11-15'})
    pairs = [(k, value if k == field else v) for k, v in parse_qsl(request.query_string)]
    query = urlencode(pairs)
    assert rejected(rebuilt(request, query_string=query, params=merged_params(query, b''))).code == 'AuthFailure'


# --- SigV2 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('method', ['POST', 'GET'])
def test_botocore_sigv2_hmac_sha256_verifies(method):
    request = botocore_signed(SigV2Auth(credentials()), method)
    assert request.params['SignatureMethod'] == 'HmacSHA256'
    assert verified(request) == ACCESS_KEY


@pytest.mark.parametrize('in_body', [False, True])
def test_sigv2_hmac_sha1_verifies(in_body):
    request = hand_signed_v2('POST' if in_body else 'GET', '127.0.0.1:8773', DESCRIBE, digest=hashlib.sha1,
                             signature_method='HmacSHA1', in_body=in_body)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY


def test_sigv2_signature_with_an_unescaped_plus_in_the_query_verifies():
    # Form decoding turns a raw '+' into a space; some older tools do not escape base64 signatures.
    request = next(signed for signed in (hand_signed_v2('GET', 'localhost', dict(DESCRIBE, Nonce=str(n)))
                                         for n in range(200)) if '+' in signed.params['Signature'])
    signature = request.params['Signature']
    query = request.query_string.replace(quote(signature, safe=''), signature)
    assert ' ' in merged_params(query, b'')['Signature']
    assert verified(rebuilt(request, query_string=query, params=merged_params(query, b'')), now=SIGNED_AT)


def test_sigv2_host_without_port_as_boto2_sends_it():
    request = hand_signed_v2('POST', '127.0.0.1', DESCRIBE, in_body=True)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    # Rebuilding the host from the listening address would add a port the client never signed.
    assert rejected(with_headers(request, Host='127.0.0.1:8773'), now=SIGNED_AT).code == 'AuthFailure'


def test_sigv2_host_with_port_as_libcloud_sends_it_any_case():
    request = hand_signed_v2('GET', 'cloud.example:8773', DESCRIBE, host_header='Cloud.Example:8773')
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY


@pytest.mark.parametrize('timestamp', ['2024-05-17T10:30:00Z', '2024-05-17T10:30:00.123Z',
                                       '2024-05-17T10:30:00+00:00', '2024-05-17T12:30:00+02:00',
                                       '2024-05-17T10:30:00.123456789Z'])
def test_sigv2_timestamp_spellings(timestamp):
    request = hand_signed_v2('GET', 'localhost', DESCRIBE, timestamp=timestamp)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY


@pytest.mark.parametrize('text, instant', [
    ('2024-05-17T10:30:00Z', datetime(2024, 5, 17, 10, 30, tzinfo=timezone.utc)),
    ('2024-05-17T10:30:00.25Z', datetime(2024, 5, 17, 10, 30, 0, 250000, tzinfo=timezone.utc)),
    ('2024-05-17T10:30:00.123456789Z', datetime(2024, 5, 17, 10, 30, 0, 123456, tzinfo=timezone.utc)),
    ('2024-05-17T12:30:00+02:00', datetime(2024, 5, 17, 10, 30, tzinfo=timezone.utc)),
    ('2024-05-17T05:00:00-0530', datetime(2024, 5, 17, 10, 30, tzinfo=timezone.utc)),
    ('2024-05-17T10:30:00', datetime(2024, 5, 17, 10, 30, tzinfo=timezone.utc)),
])
def test_iso8601_parsing_keeps_fractions_and_offsets(text, instant):
    assert auth._parse_iso8601(text, 'Timestamp') == instant


@pytest.mark.parametrize('timestamp', ['2024-05-17 10:30:00', '2024-13-17T10:30:00Z', '17/05/2024',
                                       '2024-05-17T10:30:00+99:00', '', '２０２４-05-17T10:30:00Z'])
def test_sigv2_malformed_timestamp_is_a_client_error(timestamp):
    error = rejected(hand_signed_v2('GET', 'localhost', DESCRIBE, timestamp=timestamp), now=SIGNED_AT)
    assert error.code == 'InvalidParameterValue' and 400 <= error.status < 500


def test_sigv2_expires_in_the_future_verifies_and_in_the_past_is_expired():
    expires = (SIGNED_AT + timedelta(minutes=5)).strftime('%Y-%m-%dT%H:%M:%SZ')
    request = hand_signed_v2('GET', 'localhost', DESCRIBE, timestamp=expires, time_param='Expires')
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    assert rejected(request, now=SIGNED_AT + timedelta(minutes=6)).code == 'RequestExpired'


def test_sigv2_expires_is_capped_at_seven_days_as_sigv4_presigning_is():
    def expiring_in(delta):
        expires = (SIGNED_AT + delta).strftime('%Y-%m-%dT%H:%M:%SZ')
        return hand_signed_v2('GET', 'localhost', DESCRIBE, timestamp=expires, time_param='Expires')
    assert verified(expiring_in(timedelta(days=7)), now=SIGNED_AT) == ACCESS_KEY
    for far in (timedelta(days=7, seconds=1), timedelta(days=3650)):
        error = rejected(expiring_in(far), now=SIGNED_AT)
        assert error.code == 'AuthFailure' and '7 days' in error.message


@pytest.mark.parametrize('version', ['0', '1', '3'])
def test_sigv2_other_signature_versions_are_unsupported(version):
    request = hand_signed_v2('GET', 'localhost', DESCRIBE)
    error = rejected(rebuilt(request, params=dict(request.params, SignatureVersion=version)), now=SIGNED_AT)
    assert error.code == 'AuthFailure' and 'not supported' in error.message


def test_sigv2_unknown_signature_method_is_unsupported():
    request = hand_signed_v2('GET', 'localhost', DESCRIBE, signature_method='HmacMD5')
    error = rejected(request, now=SIGNED_AT)
    assert error.code == 'AuthFailure' and 'not supported' in error.message


def test_sigv2_tampered_param_is_rejected():
    request = botocore_signed(SigV2Auth(credentials()), 'POST')
    params = dict(request.params, **{'ImageId.1': 'ami-87654321'})
    assert rejected(rebuilt(request, params=params)).code == 'AuthFailure'


# --- failures common to all schemes ---------------------------------------------------------------

SIGNERS = {
    'sigv4-post': lambda **kw: botocore_signed(sigv4(**kw), 'POST'),
    'sigv4-get': lambda **kw: botocore_signed(sigv4(**kw), 'GET'),
    'presigned': lambda **kw: botocore_signed(SigV4QueryAuth(credentials(**kw), 'ec2', REGION), 'GET'),
    'sigv2': lambda **kw: botocore_signed(SigV2Auth(credentials(**kw)), 'POST'),
}


@pytest.mark.parametrize('scheme', SIGNERS)
def test_wrong_secret_is_auth_failure(scheme):
    error = rejected(SIGNERS[scheme](secret='not-the-secret'))
    assert (error.code, error.status) == ('AuthFailure', 401)
    assert 'not able to validate the provided access credentials' in error.message


@pytest.mark.parametrize('scheme', SIGNERS)
def test_unknown_access_key_is_auth_failure(scheme):
    error = rejected(SIGNERS[scheme](key='AKIDNOBODY'))
    assert (error.code, error.status) == ('AuthFailure', 401)


@pytest.mark.parametrize('scheme', ['sigv4-post', 'sigv4-get', 'sigv2'])
@pytest.mark.parametrize('offset', [timedelta(minutes=16), timedelta(minutes=-16)])
def test_request_time_outside_the_skew_window_is_expired(scheme, offset):
    request = SIGNERS[scheme]()
    error = rejected(request, now=datetime.now(timezone.utc) + offset)
    assert (error.code, error.status) == ('RequestExpired', 400)


@pytest.mark.parametrize('scheme', ['sigv4-post', 'sigv2'])
def test_request_time_inside_the_skew_window_verifies(scheme):
    assert verified(SIGNERS[scheme](), now=datetime.now(timezone.utc) + timedelta(minutes=14)) == ACCESS_KEY


def test_tampered_query_param_is_rejected():
    request = botocore_signed(sigv4(), 'GET')
    query = request.query_string.replace('ami-12345678', 'ami-12345679')
    assert query != request.query_string
    assert rejected(rebuilt(request, query_string=query, params=merged_params(query, b''))).code == 'AuthFailure'


def test_tampered_body_is_rejected():
    request = botocore_signed(sigv4(), 'POST')
    body = request.body.replace(b'ami-12345678', b'ami-12345679')
    assert rejected(rebuilt(request, body=body, params=merged_params('', body))).code == 'AuthFailure'


def test_tampered_body_under_a_declared_payload_hash_is_rejected():
    body = b'Action=TerminateInstances&InstanceId.1=i-1'
    headers = {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE, 'X-Amz-Content-SHA256': hashlib.sha256(body).hexdigest()}
    request = hand_signed_v4('POST', headers, ['host', 'x-amz-content-sha256', 'x-amz-date'], body=body)
    assert verified(request, now=SIGNED_AT) == ACCESS_KEY
    forged = rebuilt(request, body=b'Action=TerminateInstances&InstanceId.1=i-2')
    assert rejected(forged, now=SIGNED_AT).code == 'AuthFailure'


def test_unsigned_payload_is_refused_when_there_is_a_body():
    body = b'Action=TerminateInstances&InstanceId.1=i-1'
    headers = {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE, 'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD'}
    request = hand_signed_v4('POST', headers, ['host', 'x-amz-content-sha256', 'x-amz-date'], body=body,
                             payload_hash='UNSIGNED-PAYLOAD')
    assert rejected(request, now=SIGNED_AT).code == 'AuthFailure'
    assert verified(rebuilt(request, body=b''), now=SIGNED_AT) == ACCESS_KEY


def test_scope_date_must_match_the_request_date():
    # Correctly signed, but with a key derived for another day than the request claims to be from.
    request = hand_signed_v4('GET', {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE}, ['host', 'x-amz-date'],
                             scope_date='20240518')
    error = rejected(request, now=SIGNED_AT)
    assert error.code == 'AuthFailure' and 'scope date' in error.message


def test_host_must_be_signed():
    request = hand_signed_v4('GET', {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE}, ['x-amz-date'])
    error = rejected(request, now=SIGNED_AT)
    assert error.code == 'AuthFailure' and 'Host' in error.message


def test_no_credentials_at_all_is_missing_authentication_token():
    request = SignedRequest('POST', '/', '', {'Host': 'localhost'}, b'Action=DescribeRegions',
                            {'Action': 'DescribeRegions'})
    error = rejected(request)
    assert (error.code, error.status) == ('MissingAuthenticationToken', 401)


def test_empty_authorization_header_counts_as_none():
    request = SignedRequest('GET', '/', 'Action=DescribeRegions', {'Authorization': '  '}, b'',
                            {'Action': 'DescribeRegions'})
    assert rejected(request).code == 'MissingAuthenticationToken'


SCOPE = f'Credential={ACCESS_KEY}/{AMZ_DATE[:8]}/{REGION}/ec2/aws4_request'


@pytest.mark.parametrize('authorization, code', [
    ('AWS4-HMAC-SHA256', 'IncompleteSignature'),
    ('AWS4-HMAC-SHA256 ', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE}', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE} SignedHeaders=host', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host, Signature=abc, Signature=def', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host, Signature=abc, Credential=AKIDOTHER', 'IncompleteSignature'),
    ('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE, SignedHeaders=host;x-amz-date, Signature=abc',
     'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE[:-12]}aws5_request, SignedHeaders=host, Signature=abc', 'IncompleteSignature'),
    (f'AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host;;x-amz-date, Signature=abc', 'AuthFailure'),
    (f'AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host;x-amz-date, Signature=ünïcödé', 'AuthFailure'),
    ('AWS AKIDEXAMPLE:c2lnbmF0dXJl', 'AuthFailure'),
    (f'AWS4-HMAC-SHA512 {SCOPE}, SignedHeaders=host, Signature=abc', 'AuthFailure'),
])
def test_malformed_authorization_header_is_a_client_error(authorization, code):
    request = SignedRequest('GET', '/', '', {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE,
                                             'Authorization': authorization}, b'', {})
    error = rejected(request, now=SIGNED_AT)
    assert error.code == code
    assert 400 <= error.status < 500


@pytest.mark.parametrize('amz_date', ['20240517', '2024-05-17T10:30:00Z', '20241317T103000Z', '20240517T103000',
                                      '٢٠٢٤٠٥١٧T103000Z', ''])
def test_malformed_x_amz_date_is_auth_failure(amz_date):
    request = hand_signed_v4('GET', {'Host': 'localhost', 'X-Amz-Date': AMZ_DATE}, ['host', 'x-amz-date'])
    assert rejected(with_headers(request, **{'X-Amz-Date': amz_date}), now=SIGNED_AT).code == 'AuthFailure'


def test_missing_date_is_incomplete_signature():
    request = hand_signed_v4('GET', {'Host': 'localhost'}, ['host'])
    assert rejected(request, now=SIGNED_AT).code == 'IncompleteSignature'
