"""The image upload endpoint: users stream disk images into the cloud, then RegisterImage them.

    PUT    /upload/<name>   append bytes to the upload <name> of the caller (created by its first PUT)
    HEAD   /upload/<name>   how much has arrived, in x-reservoir-* headers (404 if there is no upload)
    GET    /upload/<name>   the same as XML
    DELETE /upload/<name>   abandon it

Authentication is SigV4 with the caller's EC2 keys, verified by the Authenticator exactly as for
the Query API. A PUT's body is streamed to disk, so it cannot be hashed before the signature is
checked: the request declares `x-amz-content-sha256: UNSIGNED-PAYLOAD`, and must sign the header
`x-reservoir-sha256` instead, the hex SHA-256 of the whole object. The back-end verifies that digest
once the last byte is in, and refuses the upload if it differs; since the digest is signed, nobody
can substitute both data and digest.

A PUT carries bytes START..END of an object of TOTAL bytes (`Content-Range: bytes START-END/TOTAL`,
or none when the body is the whole object), and `Content-Length`. START must be what has arrived:
an interrupted transfer resumes with a HEAD and a PUT of the rest. `Content-Range: bytes */TOTAL`
with an empty body creates the upload (checking name, size and quota) without sending data.
Optional headers: `x-reservoir-disk-format` (qcow2 or raw; checked against the file) and
`x-reservoir-image-type` (machine, the default, kernel or ramdisk). A gzip-compressed object is
recognised by its first bytes and decompressed as it arrives.

Errors are EC2 error documents, like the Query API's.
"""
import logging
import re
import uuid

from flask import Response, request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import get_input_stream

from backend.errors import BackendError
from backend.uploads import Piece

from . import auth
from .errors import EC2Error
from .renderer import escape, format_timestamp, render_error

log = logging.getLogger(__name__)

ROUTE = '/upload/<name>'
METHODS = ['GET', 'HEAD', 'PUT', 'DELETE']
SHA256_HEADER = 'x-reservoir-sha256'
_CONTENT_RANGE = re.compile(r'bytes (?:([0-9]{1,19})-([0-9]{1,19})|\*)/([0-9]{1,19})')
_SIGNED_HEADERS = re.compile(r'SignedHeaders=([^,\s]+)')
_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/'
# Codes whose HTTP status says more than the default 400.
_STATUS = {'InvalidUpload.NotFound': 404, 'InvalidUpload.Offset': 409, 'InvalidUpload.InProgress': 409,
           'InvalidUpload.Mismatch': 409, 'InvalidUpload.Complete': 409, 'MissingContentLength': 411,
           'InvalidImage.TooLarge': 413, 'InvalidUpload.Range': 416}


def register(app, cloud, authenticator):
    app.add_url_rule(ROUTE, endpoint='upload', view_func=UploadEndpoint(cloud, authenticator).handle,
                     methods=METHODS)


class UploadEndpoint:
    def __init__(self, cloud, authenticator):
        self.cloud = cloud
        self.authenticator = authenticator

    def handle(self, name):
        request_id = str(uuid.uuid4())
        body = _Body(request)
        try:
            account_id = self._authenticate()
            uploads = self.cloud.uploads
            if request.method == 'PUT':
                status = uploads.receive(account_id, _piece(name), body)
            elif request.method == 'DELETE':
                uploads.abort(account_id, name)
                return Response(status=204, headers={'x-amzn-RequestId': request_id})
            else:
                status = uploads.status(account_id, name)
            return _status_response(status, request_id)
        except (EC2Error, BackendError) as error:
            return _error_response(error, request_id)
        except Exception:  # a bug must still answer as EC2 does, never as a traceback page
            log.exception('upload request %s failed', request_id)
            return _error_response(EC2Error('InternalError', 'An internal error has occurred'), request_id)

    def _authenticate(self):
        signed = auth.SignedRequest(
            method=request.method,
            path=auth.request_path(request.environ),
            query_string=request.query_string.decode('latin-1'),
            headers=request.headers,
            body=b'',                  # a PUT's body is covered by the signed x-reservoir-sha256
            params={},
        )
        if request.method == 'PUT' and _is_signed():
            _check_unsigned_payload_is_declared()
        principal = self.authenticator.signed(signed)
        if request.method == 'PUT' and SHA256_HEADER not in _signed_header_names():
            raise EC2Error('AuthFailure', f'The {SHA256_HEADER} header must be signed')
        return principal.account_id


class _Body:
    """The request body, read as the client sends it; a client that goes away is an early end.

    When a refused request leaves part of its body unread, the server answers and then closes the
    connection: the client reads its error and opens a new connection for its next request.
    """

    def __init__(self, flask_request):
        self._request = flask_request
        self._stream = None

    def read(self, size):
        if self._stream is None:
            # Not the app's 1 MiB limit of Query requests: the back-end enforces the image limits.
            self._stream = get_input_stream(self._request.environ, max_content_length=None)
        try:
            return self._stream.read(size)
        except ClientDisconnected:
            return b''


def _check_unsigned_payload_is_declared():
    declared = request.headers.get('x-amz-content-sha256')
    if declared != auth.UNSIGNED_PAYLOAD:
        raise EC2Error('InvalidRequest', f'An upload is streamed: sign it with x-amz-content-sha256: '
                                         f'{auth.UNSIGNED_PAYLOAD} and the object digest in {SHA256_HEADER}')


def _is_signed():
    return 'Authorization' in request.headers or 'X-Amz-Signature' in request.args


def _signed_header_names():
    authorization = request.headers.get('Authorization', '')
    match = _SIGNED_HEADERS.search(authorization)
    names = match[1] if match else request.args.get('X-Amz-SignedHeaders', '')
    return {name.strip().lower() for name in names.split(';')}


def _piece(name):
    length = request.content_length
    if length is None:
        # Without Content-Length a request has no body, unless it is chunked, which uploads are not.
        if 'chunked' in request.headers.get('Transfer-Encoding', '').lower():
            raise EC2Error('MissingContentLength', 'An upload request needs a Content-Length')
        length = 0
    content_range = request.headers.get('Content-Range')
    if content_range is None:
        offset, total = 0, length
    else:
        offset, total = _parse_range(content_range, length)
    return Piece(name=name, offset=offset, length=length, total_bytes=total,
                 sha256=request.headers.get(SHA256_HEADER, '').strip().lower(),
                 image_type=request.headers.get('x-reservoir-image-type', 'machine').strip(),
                 disk_format=request.headers.get('x-reservoir-disk-format', '').strip() or None)


def _parse_range(text, length):
    match = _CONTENT_RANGE.fullmatch(text.strip())
    if not match:
        raise EC2Error('InvalidUpload.Range', f'Content-Range must be "bytes START-END/TOTAL" or '
                                              f'"bytes */TOTAL", not {text[:60]!r}', 416)
    total = int(match[3])
    if match[1] is None:
        if length:
            raise EC2Error('InvalidUpload.Range', 'Content-Range "bytes */TOTAL" goes with an empty body', 416)
        return 0, total
    start, end = int(match[1]), int(match[2])
    if end - start + 1 != length:
        raise EC2Error('InvalidUpload.Range', f'Content-Range {start}-{end} is {end - start + 1} bytes, '
                                              f'but Content-Length is {length}', 416)
    return start, total


def _status_response(status, request_id):
    headers = {
        'x-amzn-RequestId': request_id,
        'x-reservoir-upload-state': status.state,
        'x-reservoir-received-bytes': str(status.received_bytes),
        'x-reservoir-total-bytes': str(status.total_bytes),
        'x-reservoir-sha256': status.sha256,
    }
    fields = [('name', status.name), ('state', status.state), ('imageType', status.image_type),
              ('receivedBytes', status.received_bytes), ('totalBytes', status.total_bytes),
              ('sha256', status.sha256), ('sizeBytes', status.size_bytes),
              ('diskFormat', status.disk_format), ('virtualSizeBytes', status.virtual_size_bytes),
              ('createTime', format_timestamp(status.created_at)),
              ('updateTime', format_timestamp(status.updated_at))]
    inner = ''.join(f'<{tag}>{escape(str(value))}</{tag}>' for tag, value in fields if value is not None)
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<UploadResponse xmlns="{_NAMESPACE}">'
            f'<requestId>{request_id}</requestId><upload>{inner}</upload></UploadResponse>')
    return Response(body, status=200, content_type='text/xml;charset=UTF-8', headers=headers)


def _error_response(error, request_id):
    status = _STATUS.get(error.code) or (error.status if isinstance(error, EC2Error) else None)
    error = EC2Error(error.code, error.message, status)
    return Response(render_error(error.code, error.message, request_id), status=error.status,
                    content_type='text/xml;charset=UTF-8', headers={'x-amzn-RequestId': request_id})
