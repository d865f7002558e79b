"""The client side of `reservoir image upload`: send an image file to a Reservoir endpoint, resuming
where an earlier attempt stopped, then register it with RegisterImage.

Credentials are found the way awscli finds them, by botocore's session: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, or a profile (--profile, AWS_PROFILE) of ~/.aws/credentials and ~/.aws/config.
Each request is signed with SigV4 over UNSIGNED-PAYLOAD plus the signed `x-reservoir-sha256` of the
whole file, as the upload endpoint asks (see ec2api/upload.py). The file is read a chunk at a time,
so its size does not matter.
"""
import dataclasses
import hashlib
import http.client
import re
import sys
import time
import urllib.parse
from pathlib import Path

CHUNK_BYTES = 1 << 20
SERVICE = 'ec2'
TIMEOUT_SECONDS = 300
RETRY_DELAYS_SECONDS = (1, 2, 5, 10, 20)
_ERROR = re.compile(r'<Code>(.*?)</Code>\s*<Message>(.*?)</Message>', re.DOTALL)


class UploadFailed(Exception):
    """The upload or the registration did not succeed; the message says why and what to do."""


class _Busy(UploadFailed):
    """The server is still finishing an earlier request on this upload (one cut off, say), or
    finished it after we asked how far it got: ask again, then go on."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to upload, as whom."""
    endpoint: str
    credentials: object               # botocore ReadOnlyCredentials
    region: str
    session: object                   # the botocore session, for RegisterImage


@dataclasses.dataclass(frozen=True)
class Status:
    """The server's view of an upload."""
    state: str
    received_bytes: int
    total_bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class UploadResult:
    name: str
    total_bytes: int
    sent_bytes: int                   # in this run
    resumed_from: int                 # bytes already on the server when this run began
    seconds: float


def open_target(endpoint, profile=None, region=None):
    """Resolve credentials and region as awscli would; refuse a malformed endpoint."""
    import botocore.exceptions
    import botocore.session
    url = urllib.parse.urlsplit(endpoint or '')
    if url.scheme not in ('http', 'https') or not url.hostname:
        raise UploadFailed(f'the endpoint must be an http:// or https:// URL, not {endpoint!r}')
    try:
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        region = region or session.get_config_variable('region')
    except botocore.exceptions.BotoCoreError as error:
        raise UploadFailed(str(error)) from None
    if not region:   # signatures are scoped to the cloud's region, as AWS's are
        raise UploadFailed("no region: set AWS_DEFAULT_REGION to the cloud's region (reservoir-1 unless "
                           "configured otherwise), or pass --region")
    if credentials is None:
        raise UploadFailed('no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, '
                           'or name a profile of ~/.aws/credentials with --profile or AWS_PROFILE')
    return Target(endpoint.rstrip('/'), credentials.get_frozen_credentials(), region, session)


def upload(target, path, name, disk_format=None, image_type='machine', progress=None,
           attempts=len(RETRY_DELAYS_SECONDS) + 1):
    """Send `path` as the upload `name`, resuming whatever part the server already has."""
    path = Path(path)
    if not path.is_file():
        raise UploadFailed(f'{path} is not a file')
    total = path.stat().st_size
    sha256 = file_sha256(path)
    transfer = _Transfer(target, name, total, sha256, disk_format, image_type)
    status = transfer.status()
    if status is not None and (status.total_bytes, status.sha256) != (total, sha256):
        raise UploadFailed(f"an upload named '{name}' with other content is on the server; "
                           'delete it (reservoir image upload --replace) or choose another name')
    if status is None:
        status = transfer.create()
    resumed_from = status.received_bytes
    started = time.monotonic()
    for attempt in range(attempts):
        if status.state == 'ready':
            break
        try:
            status = transfer.send(path, status.received_bytes, progress)
        except (OSError, http.client.HTTPException, _Busy) as error:
            if attempt + 1 == attempts:
                raise UploadFailed(f'the transfer was interrupted ({error}); run the same command again '
                                   'to resume it') from None
            time.sleep(RETRY_DELAYS_SECONDS[min(attempt, len(RETRY_DELAYS_SECONDS) - 1)])
            status = transfer.status()
            if status is None:
                raise UploadFailed(f"the server no longer has the upload '{name}'") from None
    if status.state != 'ready':
        raise UploadFailed(f"the upload '{name}' is not complete ({status.received_bytes} of {total} bytes)")
    return UploadResult(name, total, total - resumed_from, resumed_from, time.monotonic() - started)


def delete_upload(target, name):
    """Abandon an upload on the server (nothing happens if there is none)."""
    _Transfer(target, name, 0, '', None, 'machine').delete()


def register(target, name, description=None, architecture=None, kernel_id=None, ramdisk_id=None):
    """RegisterImage of the finished upload `name` under the same name; returns the image id."""
    import botocore.exceptions
    arguments = {'Name': name, 'ImageLocation': name, 'Description': description, 'Architecture': architecture,
                 'KernelId': kernel_id, 'RamdiskId': ramdisk_id}
    client = target.session.create_client(SERVICE, region_name=target.region, endpoint_url=target.endpoint)
    try:
        return client.register_image(**{key: value for key, value in arguments.items() if value})['ImageId']
    except botocore.exceptions.ClientError as error:
        details = error.response.get('Error', {})
        raise UploadFailed(f"RegisterImage: {details.get('Code')}: {details.get('Message')}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise UploadFailed(f'RegisterImage: {error}') from None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as source:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


class _Transfer:
    """The HTTP requests of one upload: status (GET), create, send the rest (PUT), delete."""

    def __init__(self, target, name, total, sha256, disk_format, image_type):
        self.target = target
        self.url = urllib.parse.urlsplit(target.endpoint)
        # At the root of the host, whatever path the EC2 endpoint has (/services/Cloud, say).
        self.path = '/upload/' + urllib.parse.quote(name, safe='')
        self.name = name
        self.total = total
        self.sha256 = sha256
        self.options = {'x-reservoir-image-type': image_type}
        if disk_format:
            self.options['x-reservoir-disk-format'] = disk_format

    def status(self):
        response, body = self._request('GET')      # not HEAD: a refusal comes with its reason
        if response.status == 404:
            return None
        _raise_for(response, body)
        return _status(response)

    def create(self):
        response, body = self._request('PUT', {**self._object_headers(), 'Content-Range': f'bytes */{self.total}'})
        _raise_for(response, body)
        return _status(response)

    def delete(self):
        response, body = self._request('DELETE')
        if response.status != 404:
            _raise_for(response, body)

    def send(self, path, offset, progress):
        """PUT bytes offset..end of the file in one request, reporting progress as they go."""
        headers = {**self._object_headers(),
                   'Content-Range': f'bytes {offset}-{self.total - 1}/{self.total}'}
        connection = self._connection()
        if progress:
            progress.begin(offset)
        try:
            self._start(connection, 'PUT', headers, length=self.total - offset)
            with open(path, 'rb') as source:
                source.seek(offset)
                sent = offset
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
                    connection.send(chunk)
                    sent += len(chunk)
                    if progress:
                        progress.update(sent)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        _raise_for(response, body)
        return _status(response)

    def _object_headers(self):
        return {'x-reservoir-sha256': self.sha256, **self.options}

    def _request(self, method, headers=None):
        connection = self._connection()
        try:
            self._start(connection, method, headers or {}, length=0)
            response = connection.getresponse()
            return response, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise UploadFailed(f'cannot reach {self.target.endpoint}: {error}') from None
        finally:
            connection.close()

    def _connection(self):
        kind = http.client.HTTPSConnection if self.url.scheme == 'https' else http.client.HTTPConnection
        return kind(self.url.hostname, self.url.port, timeout=TIMEOUT_SECONDS)

    def _start(self, connection, method, headers, length):
        """Send the signed request line and headers; the body, if any, follows."""
        connection.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
        for header, value in self._signed(method, headers).items():
            connection.putheader(header, value)
        if method == 'PUT':
            connection.putheader('Content-Length', str(length))
        connection.endheaders()

    def _signed(self, method, headers):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        class UnsignedPayloadSigV4(SigV4Auth):
            def payload(self, request):
                return 'UNSIGNED-PAYLOAD'

        url = urllib.parse.urlunsplit((self.url.scheme, self.url.netloc, self.path, '', ''))
        request = AWSRequest(method=method, url=url, headers={
            'Host': self.url.netloc, 'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD', **headers})
        UnsignedPayloadSigV4(self.target.credentials, SERVICE, self.target.region).add_auth(request)
        return dict(request.headers.items())


def _status(response):
    def number(header):
        return int(response.getheader(header) or 0)
    return Status(response.getheader('x-reservoir-upload-state') or '', number('x-reservoir-received-bytes'),
                  number('x-reservoir-total-bytes'), response.getheader('x-reservoir-sha256') or '')


def _raise_for(response, body):
    if response.status < 300:
        return
    match = _ERROR.search(body.decode('utf-8', 'replace'))
    if match:
        code, message = (_unescape(text) for text in match.groups())
        retry = code in ('InvalidUpload.InProgress', 'InvalidUpload.Offset')
        raise (_Busy if retry else UploadFailed)(f'{code}: {message}')
    raise UploadFailed(f'the server answered {response.status} {response.reason}')


def _unescape(text):
    return text.replace('&lt;', '<').replace('&gt;', '>').replace('&#13;', '\r').replace('&amp;', '&')


class ProgressBar:
    """Progress on a terminal: one line redrawn at most ten times a second; on a file or pipe, a line
    per tenth of the way."""

    WIDTH = 30

    def __init__(self, total, label, stream=None):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()
        self.baseline = 0
        self._last_draw = 0.0
        self._last_tenth = -1

    def begin(self, done):
        """Count the rate from here: `done` bytes were there before (an upload being resumed)."""
        self.started, self.baseline = time.monotonic(), done

    def update(self, done):
        now = time.monotonic()
        tenth = done * 10 // self.total
        if self.interactive and now - self._last_draw >= 0.1:
            self.stream.write('\r' + self._line(done, now))
            self._last_draw = now
        elif not self.interactive and tenth > self._last_tenth:
            self.stream.write(self._line(done, now) + '\n')
            self._last_tenth = tenth
        self.stream.flush()

    def finish(self, done):
        if self.interactive:
            self.stream.write('\r' + self._line(done, time.monotonic()) + '\n')
        elif self._last_tenth < 10:
            self.stream.write(self._line(done, time.monotonic()) + '\n')
        self.stream.flush()

    def _line(self, done, now):
        filled = self.WIDTH * done // self.total
        rate = (done - self.baseline) / max(now - self.started, 1e-6)
        return (f'{self.label} [{"#" * filled}{"-" * (self.WIDTH - filled)}] {100 * done // self.total:3d}% '
                f'{_mib(done)}/{_mib(self.total)} MiB {_mib(rate)} MiB/s')


def _mib(count):
    return f'{count / (1 << 20):.1f}'

