"""Verify who signed an EC2 Query API request: SigV4 (header or presigned query) and SigV2.

Every client we serve signs differently in small ways (see the wire notes): header case, separators
in the Authorization header, unsorted query strings, which headers are signed, the Host with or
without a port. The verifier therefore recomputes the signature from what was received, never from
what a "normal" client would have sent. Anything malformed is an EC2Error, so a hostile request can
only ever earn a 4xx.
"""
import base64
import functools
import hashlib
import hmac
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from .errors import EC2Error

log = logging.getLogger(__name__)

V4_ALGORITHM = 'AWS4-HMAC-SHA256'
V4_TERMINATOR = 'aws4_request'
SERVICE = 'ec2'
UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
EMPTY_BODY_SHA256 = hashlib.sha256(b'').hexdigest()
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # AWS refuses presigned requests valid for longer than a week;
#                                      SigV2 `Expires` gets the same cap
V2_DIGESTS = {'HmacSHA256': hashlib.sha256, 'HmacSHA1': hashlib.sha1}
V2_MARKERS = ('AWSAccessKeyId', 'Signature', 'SignatureVersion', 'SignatureMethod')
PRESIGN_REQUIRED = ('X-Amz-Credential', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Signature')

# [0-9] rather than \d: \d also matches non-ASCII digits, which int() would then accept.
_AMZ_DATE = re.compile(r'([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z')
_ISO8601 = re.compile(r'([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})'
                      r'(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:?[0-9]{2})?')

_INVALID_CREDENTIALS = 'AWS was not able to validate the provided access credentials'


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of an HTTP request, free of any web framework."""
    method: str                    # 'GET' / 'POST'
    path: str                      # the raw request path as received
    query_string: str              # the raw, undecoded query string; '' if none
    headers: Mapping[str, str]     # looked up case-insensitively
    body: bytes                    # the raw body
    params: Mapping[str, str]      # query and form parameters merged, decoded


def request_path(environ) -> str:
    """The request's path as the client encoded it, which is what it signed.

    Servers that keep the raw request line give it (RAW_URI); WSGI's PATH_INFO is decoded, so it is
    encoded again the way the AWS SDKs encode (every byte but unreserved characters and '/'), which
    gives back exactly what they sent.
    """
    raw = environ.get('RAW_URI')
    if raw:
        return raw.split('?', 1)[0] or '/'
    path = environ.get('PATH_INFO') or '/'
    return urllib.parse.quote(path.encode('latin-1'), safe='/~') or '/'


def authenticate(request: SignedRequest, secret_for: Callable[[str], str | None], *, region: str,
                 now: datetime | None = None, max_skew: timedelta = timedelta(minutes=15)) -> str:
    """Return the verified access key id of a request signed for EC2, or raise EC2Error."""
    return verify(request, secret_for, region=region, services=(SERVICE,), now=now, max_skew=max_skew).access_key


@dataclass(frozen=True)
class Verified:
    access_key: str
    service: str          # what a SigV4 signature was scoped to; SigV2 signs for EC2 only


def verify(request: SignedRequest, secret_for: Callable[[str], str | None], *, region: str, services,
           now: datetime | None = None, max_skew: timedelta = timedelta(minutes=15)) -> Verified:
    """Verify a request signed for one of `services` (the first is what SigV2 requests are for).

    `secret_for(access_key_id)` returns that key's secret, or None for an unknown key. It is called
    outside the input-parsing guard, so a failure of the credential store stays a server error.
    A SigV4 signature must be scoped to `region` (this cloud's) and to the service `ec2`, as AWS
    requires: a signature made for another region or service must not be replayable here.
    """
    now = datetime.now(timezone.utc) if now is None else _as_utc(now)
    claim = _guarded(_read_claim, request, now, max_skew)
    service = claim.check_scope(region, services)
    secret = secret_for(claim.access_key)
    if secret is None:
        log.info('authentication failed: unknown access key %r', claim.access_key)
        raise EC2Error('AuthFailure', _INVALID_CREDENTIALS)
    if not _guarded(claim.matches, secret):
        log.info('authentication failed: signature mismatch for access key %r', claim.access_key)
        log.debug('string to sign was:\n%s', claim.string_to_sign)
        raise EC2Error('AuthFailure', _INVALID_CREDENTIALS)
    return Verified(claim.access_key, service)


def _guarded(step, *args):
    """Run a step over client-controlled input; any failure it did not foresee is a client error."""
    try:
        return step(*args)
    except EC2Error:
        raise
    except Exception:  # noqa: BLE001 - a 4xx beats a traceback, but the bug is still logged
        log.exception('unexpected failure while reading a request signature')
        raise EC2Error('IncompleteSignature', 'The request signature could not be parsed.') from None


# ---------------------------------------------------------------------------------------------
# What was claimed: the signer's key, the signature, and the exact text it must be a MAC of.

@dataclass(frozen=True)
class _V4Claim:
    access_key: str
    date: str
    region: str
    service: str
    strings_to_sign: tuple[str, ...]  # more than one only where signers legitimately differ
    signature: str

    @property
    def string_to_sign(self):
        return self.strings_to_sign[0]

    def matches(self, secret):
        key = _v4_signing_key(secret, self.date, self.region, self.service)
        sent = _utf8(self.signature.lower())
        return any(hmac.compare_digest(_hex_hmac_sha256(key, text), sent) for text in self.strings_to_sign)

    def check_scope(self, region, services):
        """The service signed for; AWS's own words when the scope is not this cloud's, checked
        before the secret is even looked up."""
        if self.region != region:
            raise EC2Error('AuthFailure', f"Credential should be scoped to a valid region, not "
                                          f"'{self.region[:64]}'. This cloud's region is '{region}'.")
        if self.service not in services:
            raise EC2Error('AuthFailure', f"Credential should be scoped to correct service: '{services[0]}'.")
        return self.service


@dataclass(frozen=True)
class _V2Claim:
    access_key: str
    digest: Callable
    string_to_sign: str
    signature: str

    def matches(self, secret):
        mac = hmac.new(_utf8(secret), _utf8(self.string_to_sign), self.digest).digest()
        # A '+' sent unencoded in a query string has been decoded to a space; base64 has no spaces.
        sent = self.signature.strip().replace(' ', '+')
        return hmac.compare_digest(base64.b64encode(mac), _utf8(sent))

    def check_scope(self, region, services):
        return services[0]    # SigV2 has no scope: the Host header and the path are signed instead


def _hex_hmac_sha256(key, text):
    return hmac.new(key, _utf8(text), hashlib.sha256).hexdigest().encode('ascii')


@functools.lru_cache(maxsize=1024)
def _v4_signing_key(secret, date, region, service):
    """The SigV4 key chain; cached since it changes only daily and costs four HMACs."""
    key = _utf8('AWS4' + secret)
    for part in (date, region, service, V4_TERMINATOR):
        key = hmac.new(key, _utf8(part), hashlib.sha256).digest()
    return key


def _read_claim(request, now, max_skew):
    headers = _Headers(request.headers)
    query = _query_pairs(request.query_string)
    authorization = (headers.get('authorization') or '').strip()
    if authorization:
        return _read_v4_header_claim(request, headers, query, authorization, now, max_skew)
    if any(name == 'X-Amz-Algorithm' for name, _ in _decoded_names(query)):
        return _read_v4_presigned_claim(request, headers, query, now, max_skew)
    if any(name in request.params for name in V2_MARKERS):
        return _read_v2_claim(request, headers, now, max_skew)
    raise EC2Error('MissingAuthenticationToken', 'Request is missing Authentication Token')


# ---------------------------------------------------------------------------------------------
# SigV4

def _read_v4_header_claim(request, headers, query, authorization, now, max_skew):
    fields = _parse_authorization(authorization)
    timestamp, request_time = _v4_request_time(headers)
    _check_skew(request_time, now, max_skew)
    payload_hash = _payload_hash(headers, request.body)
    return _v4_claim(request, headers, fields['Credential'], fields['SignedHeaders'], fields['Signature'],
                     timestamp, _canonical_query(query), (payload_hash,))


def _read_v4_presigned_claim(request, headers, query, now, max_skew):
    fields = _presign_fields(query)
    if fields['X-Amz-Algorithm'] != V4_ALGORITHM:
        raise EC2Error('AuthFailure', f"Unsupported X-Amz-Algorithm {fields['X-Amz-Algorithm']!r}")
    if request.body:
        # The body of a presigned request is not signed, so parameters in it could be forged.
        raise EC2Error('AuthFailure', 'A presigned request must carry all its parameters in the query string')
    timestamp = fields['X-Amz-Date']
    request_time = _parse_amz_date(timestamp)
    _check_presign_window(request_time, fields.get('X-Amz-Expires'), now, max_skew)
    unsigned_query = [(name, value) for name, value in query if name != b'X-Amz-Signature']
    # botocore's SigV4QueryAuth and the JS SDK sign the hash of the (empty) body; S3-style presigners
    # sign UNSIGNED-PAYLOAD. With the body required empty, both mean the same thing.
    payload_hashes = (EMPTY_BODY_SHA256, UNSIGNED_PAYLOAD)
    return _v4_claim(request, headers, fields['X-Amz-Credential'], fields['X-Amz-SignedHeaders'],
                     fields['X-Amz-Signature'], timestamp, _canonical_query(unsigned_query), payload_hashes)


def _v4_claim(request, headers, credential, signed_headers, signature, timestamp, canonical_query,
              payload_hashes):
    access_key, date, region, service = _parse_credential(credential)
    if date != timestamp[:8]:
        raise EC2Error('AuthFailure', f'The credential scope date {date} does not match the request date '
                                      f'{timestamp[:8]}')
    canonical_prefix = '\n'.join([
        request.method,
        _canonical_uri(request.path),
        canonical_query,
        _canonical_headers(headers, signed_headers),
        signed_headers,
    ])
    scope = f'{date}/{region}/{service}/{V4_TERMINATOR}'
    strings_to_sign = tuple(_v4_string_to_sign(timestamp, scope, f'{canonical_prefix}\n{payload_hash}')
                            for payload_hash in payload_hashes)
    return _V4Claim(access_key=access_key, date=date, region=region, service=service,
                    strings_to_sign=strings_to_sign, signature=signature)


def _v4_string_to_sign(timestamp, scope, canonical_request):
    digest = hashlib.sha256(_utf8(canonical_request)).hexdigest()
    return f'{V4_ALGORITHM}\n{timestamp}\n{scope}\n{digest}'


def _parse_authorization(value):
    """Split `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` (`,` or `, `)."""
    algorithm, _, rest = value.partition(' ')
    if algorithm != V4_ALGORITHM:
        raise EC2Error('AuthFailure', f'Unsupported Authorization type {algorithm[:40]!r}; use {V4_ALGORITHM}')
    fields = {}
    for part in rest.split(','):
        name, equals, field_value = part.strip().partition('=')
        if not equals or name in fields:
            raise EC2Error('IncompleteSignature', f'Authorization header has a malformed element {part[:60]!r}')
        fields[name] = field_value
    for required in ('Credential', 'SignedHeaders', 'Signature'):
        if not fields.get(required):
            raise EC2Error('IncompleteSignature', f"Authorization header requires a '{required}' parameter")
    return fields


def _presign_fields(query):
    fields = {name: value.decode('utf-8', 'replace') for name, value in _decoded_names(query)
              if name.startswith('X-Amz-')}
    for required in PRESIGN_REQUIRED:
        if not fields.get(required):
            raise EC2Error('IncompleteSignature', f'A presigned request requires the parameter {required}')
    return fields


def _parse_credential(credential):
    """`AKID/yyyymmdd/region/service/aws4_request` -> (access key, date, region, service)."""
    parts = credential.split('/')
    if len(parts) != 5 or not all(parts):
        raise EC2Error('IncompleteSignature', 'Credential must have the form '
                                              '<key>/<yyyymmdd>/<region>/<service>/aws4_request')
    if parts[4] != V4_TERMINATOR:
        raise EC2Error('IncompleteSignature', f"Credential should be scoped with a valid terminator: "
                                              f"'{V4_TERMINATOR}', not {parts[4][:40]!r}")
    return tuple(parts[:4])


def _v4_request_time(headers):
    """The signed timestamp in SigV4's basic format and as a datetime; X-Amz-Date wins over Date."""
    amz_date = headers.get('x-amz-date')
    if amz_date is not None:
        return amz_date, _parse_amz_date(amz_date)
    http_date = headers.get('date')
    if http_date is None:
        raise EC2Error('IncompleteSignature', "Authorization header requires existence of either a "
                                              "'X-Amz-Date' or a 'Date' header")
    request_time = _parse_http_date(http_date)
    return request_time.strftime('%Y%m%dT%H%M%SZ'), request_time


def _payload_hash(headers, body):
    """The declared payload hash if it is the body's, else the body's own hash."""
    body_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get('x-amz-content-sha256')
    if declared is None or declared == body_hash:
        return body_hash
    if declared == UNSIGNED_PAYLOAD and not body:
        return declared
    # Trusting a declared hash without checking it would let anyone replace a signed body.
    raise EC2Error('AuthFailure', 'The x-amz-content-sha256 header does not match the request body')


def _canonical_uri(path):
    """The path without dot segments or empty segments, each segment URI-encoded once more.

    The path arrives still encoded as the client sent it; the signing clients (botocore, the JS SDK)
    encode that already-encoded path again, so decoding it first would break %-escapes.
    """
    path = path or '/'
    segments = []
    for segment in path.split('/'):
        if segment == '..':
            if segments:
                segments.pop()
        elif segment and segment != '.':
            segments.append(segment)
    normalized = '/' + '/'.join(segments)
    if segments and path.endswith('/'):
        normalized += '/'
    return urllib.parse.quote(_utf8(normalized), safe='/~')


def _canonical_headers(headers, signed_headers):
    names = signed_headers.split(';')
    if 'host' not in (name.lower() for name in names):
        raise EC2Error('AuthFailure', "'Host' must be a signed header")
    lines = []
    for name in names:
        values = headers.get_all(name.lower())
        if not name or not values:
            raise EC2Error('AuthFailure', f'Signed header {name[:60]!r} is not in the request')
        lines.append(name.lower() + ':' + ','.join(' '.join(value.split()) for value in values))
    return '\n'.join(lines) + '\n'


def _canonical_query(pairs):
    """Every pair re-encoded per RFC 3986 and sorted by key, then value (clients send any order)."""
    encoded = sorted((_rfc3986(name), _rfc3986(value)) for name, value in pairs)
    return '&'.join(f'{name}={value}' for name, value in encoded)


def _check_presign_window(request_time, expires_text, now, max_skew):
    if request_time - now > max_skew:
        raise EC2Error('RequestExpired', f'Request is not yet valid: it is dated {request_time:%Y%m%dT%H%M%SZ}')
    if expires_text is None:
        _check_skew(request_time, now, max_skew)
        return
    if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 7:
        raise EC2Error('IncompleteSignature', 'X-Amz-Expires must be a number of seconds')
    expires = int(expires_text)
    if not 0 < expires <= MAX_PRESIGN_EXPIRES:
        raise EC2Error('AuthFailure', f'X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds')
    if now > request_time + timedelta(seconds=expires):
        raise EC2Error('RequestExpired', 'Request has expired')


# ---------------------------------------------------------------------------------------------
# SigV2

def _read_v2_claim(request, headers, now, max_skew):
    params = request.params
    version = params.get('SignatureVersion')
    if version != '2':
        raise EC2Error('AuthFailure', f'Signature version {str(version)[:10]} is not supported; use 2 or 4')
    for required in ('AWSAccessKeyId', 'Signature', 'SignatureMethod'):
        if not params.get(required):
            raise EC2Error('IncompleteSignature', f'The request must contain the parameter {required}')
    digest = V2_DIGESTS.get(params['SignatureMethod'])
    if digest is None:
        raise EC2Error('AuthFailure', f"Signature method {params['SignatureMethod'][:40]!r} is not supported; "
                                      f"use HmacSHA256 or HmacSHA1")
    _check_v2_time(params, now, max_skew)
    # The Host header exactly as received: boto 2 signs it without the port, libcloud with it.
    host = (headers.get('host') or '').lower()
    string_to_sign = f'{request.method}\n{host}\n{request.path or "/"}\n{_v2_canonical_query(params)}'
    return _V2Claim(access_key=params['AWSAccessKeyId'], digest=digest, string_to_sign=string_to_sign,
                    signature=params['Signature'])


def _check_v2_time(params, now, max_skew):
    timestamp, expires = params.get('Timestamp'), params.get('Expires')
    if timestamp is not None and expires is not None:
        raise EC2Error('InvalidParameterCombination', 'Only one of Timestamp and Expires may be given')
    if timestamp is not None:
        _check_skew(_parse_iso8601(timestamp, 'Timestamp'), now, max_skew)
    elif expires is not None:
        expires_at = _parse_iso8601(expires, 'Expires')
        if now > expires_at:
            raise EC2Error('RequestExpired', f'Request has expired: Expires was {expires[:40]}')
        # Capped as SigV4 presigning is: a leaked request must not stay replayable for years.
        if expires_at - now > timedelta(seconds=MAX_PRESIGN_EXPIRES):
            raise EC2Error('AuthFailure', f'Expires must be at most {MAX_PRESIGN_EXPIRES} seconds (7 days) '
                                          f'after the server time {now:%Y-%m-%dT%H:%M:%SZ}')
    else:
        raise EC2Error('IncompleteSignature', 'The request must contain the parameter Timestamp or Expires')


def _v2_canonical_query(params):
    # Sorted by the decoded name, as every SigV2 client does (byte order of UTF-8 = code point order).
    return '&'.join(f'{_rfc3986(_utf8(name))}={_rfc3986(_utf8(str(params[name])))}'
                    for name in sorted(params) if name != 'Signature')


# ---------------------------------------------------------------------------------------------
# Time

def _check_skew(request_time, now, max_skew):
    if request_time - now > max_skew:
        raise EC2Error('RequestExpired', f'Request is dated {request_time:%Y-%m-%dT%H:%M:%SZ}, too far in the '
                                         f'future of the server time {now:%Y-%m-%dT%H:%M:%SZ}')
    if now - request_time > max_skew:
        raise EC2Error('RequestExpired', f'Request has expired: it is dated {request_time:%Y-%m-%dT%H:%M:%SZ}, '
                                         f'the server time is {now:%Y-%m-%dT%H:%M:%SZ}')


def _parse_amz_date(text):
    match = _AMZ_DATE.fullmatch(text)
    request_time = match and _utc_datetime(*match.groups())
    if not request_time:
        raise EC2Error('AuthFailure', f"X-Amz-Date must be in ISO 8601 basic format (yyyyMMdd'T'HHmmss'Z'), "
                                      f"got {text[:40]!r}")
    return request_time


def _parse_http_date(text):
    if _AMZ_DATE.fullmatch(text):
        return _parse_amz_date(text)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise EC2Error('AuthFailure', f'The Date header {text[:40]!r} is not a valid HTTP date') from None
    return _as_utc(parsed)


def _parse_iso8601(text, parameter):
    """`YYYY-MM-DDTHH:MM:SS`, optional fraction, `Z` or a numeric offset (none means UTC)."""
    match = _ISO8601.fullmatch(text)
    parsed = match and _utc_datetime(*match.groups()[:6], fraction=match[7], offset=match[8])
    if not parsed:
        raise EC2Error('InvalidParameterValue', f'Value ({text[:40]}) for parameter {parameter} is invalid. '
                                                f'Expected an ISO 8601 time such as 2024-01-31T12:00:00Z')
    return parsed


def _utc_datetime(year, month, day, hour, minute, second, fraction=None, offset=None):
    """A UTC datetime from regex groups, or None if they name no real instant (month 13, ...)."""
    microsecond = int((fraction or '0')[:6].ljust(6, '0'))
    try:
        zone = timezone.utc if offset in (None, 'Z') else _fixed_offset(offset)
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond,
                          tzinfo=zone)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _fixed_offset(offset):
    digits = offset[1:].replace(':', '')
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return timezone(timedelta(minutes=-minutes if offset[0] == '-' else minutes))


def _as_utc(moment):
    """Naive datetimes are taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------
# Encoding

class _Headers:
    """Case-insensitive view of request headers that keeps every value of a repeated header."""

    def __init__(self, source):
        self._values = {}
        for name, value in source.items():
            self._values.setdefault(_text(name).lower(), []).append(_text(value))

    def get_all(self, name):
        return self._values.get(name, [])

    def get(self, name):
        values = self._values.get(name)
        return ','.join(values) if values else None


def _query_pairs(query_string):
    """The raw query string as (name, value) byte pairs, percent-decoded and `+` read as a space."""
    pairs = []
    for piece in _raw_bytes(query_string).split(b'&'):
        if piece:
            name, _, value = piece.partition(b'=')
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _decoded_names(pairs):
    return ((name.decode('utf-8', 'replace'), value) for name, value in pairs)


def _unquote(raw):
    return urllib.parse.unquote_to_bytes(raw.replace(b'+', b' '))


def _rfc3986(raw):
    """Percent-encode bytes leaving only RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~)."""
    return urllib.parse.quote(raw, safe='-_.~')


def _raw_bytes(text):
    """The bytes of a query string; WSGI hands them over decoded as latin-1, so that undoes it."""
    if isinstance(text, bytes):
        return text
    try:
        return text.encode('latin-1')
    except UnicodeEncodeError:
        return _utf8(text)


def _utf8(text):
    # surrogatepass: no input text, however odd, may raise here.
    return text.encode('utf-8', 'surrogatepass')


def _text(value):
    return value.decode('latin-1') if isinstance(value, bytes) else str(value)
