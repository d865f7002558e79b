"""The front between the HTTP server and the WSGI application: no slow client can hold a thread.

Granian calls this object through its RSGI interface, in an event loop. A Query API request's body
(at most 1 MiB) is read there, with a deadline, and only a complete request is handed to the Flask
application on a pool of threads; so connections that send headers and then trickle, or nothing,
cost the server a few kilobytes each, however many there are, and never a request thread.
Image uploads are streams of gigabytes that the application must read as they arrive: they run on
threads of their own, a few per client address at most, fed from the event loop chunk by chunk; an
upload whose sender stalls ends as an interrupted transfer, which the client resumes.
"""
import asyncio
import collections
import concurrent.futures
import io
import logging
import queue
import sys
import threading
import uuid

from . import soap_response
from .app import MAX_BODY_BYTES
from .errors import EC2Error
from .renderer import render_error

log = logging.getLogger(__name__)

UPLOAD_PREFIX = '/upload/'
_QUEUED_CHUNKS = 16               # an upload's chunks read ahead of its thread
_END = object()


class Front:
    def __init__(self, app, threads, settings):
        """`settings`: the [server] settings (timeouts and upload limits)."""
        self.app = app
        self.settings = settings
        self.requests = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix='reservoir-request')
        self.uploads = concurrent.futures.ThreadPoolExecutor(settings.upload_threads,
                                                             thread_name_prefix='reservoir-upload')
        self.uploading = collections.Counter()     # client address -> uploads running

    async def __rsgi__(self, scope, protocol):
        if scope.proto != 'http':
            return
        try:
            if scope.path.startswith(UPLOAD_PREFIX) and scope.method == 'PUT':
                await self._upload(scope, protocol)
            else:
                await self._request(scope, protocol)
        except Exception:      # never a traceback to the client, nor a dead connection without answer
            log.exception('the front failed on %s %s', scope.method, scope.path)
            _reply_error(protocol, 'InternalError', 'An internal error has occurred', 500)

    # -- Query API requests --------------------------------------------------------------------------

    async def _request(self, scope, protocol):
        length = _content_length(scope)
        if length is not None and length > MAX_BODY_BYTES:
            _reply_error(protocol, 'RequestEntityTooLarge', f'The request body is larger than {MAX_BODY_BYTES} bytes.', 413,
                         soap=_is_soap(scope))
            return
        try:
            body = await asyncio.wait_for(_read_body(protocol, MAX_BODY_BYTES), self.settings.body_timeout_seconds)
        except asyncio.TimeoutError:
            _reply_error(protocol, 'RequestTimeout', 'The request body did not arrive in time.', 408, soap=_is_soap(scope))
            return
        except _TooLarge:
            _reply_error(protocol, 'RequestEntityTooLarge', f'The request body is larger than {MAX_BODY_BYTES} bytes.', 413,
                         soap=_is_soap(scope))
            return
        environ = _environ(scope, io.BytesIO(body), len(body))
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(self.requests, _call, self.app, environ)
        protocol.response_bytes(status, headers, payload)

    # -- uploads -------------------------------------------------------------------------------------

    async def _upload(self, scope, protocol):
        client = scope.client.rsplit(':', 1)[0]
        if self.uploading[client] >= self.settings.uploads_per_client or \
                sum(self.uploading.values()) >= self.settings.upload_threads:
            _reply_error(protocol, 'RequestLimitExceeded', 'Too many uploads at once; try again shortly.', 503)
            return
        self.uploading[client] += 1
        try:
            chunks = queue.Queue()
            environ = _environ(scope, _QueuedBody(chunks), _content_length(scope))
            loop = asyncio.get_running_loop()
            answer = loop.run_in_executor(self.uploads, _call, self.app, environ)
            await _feed(protocol, chunks, answer, self.settings.upload_idle_seconds)
            status, headers, payload = await answer
            protocol.response_bytes(status, headers, payload)
        finally:
            self.uploading[client] -= 1
            if not self.uploading[client]:
                del self.uploading[client]


class _TooLarge(Exception):
    pass


async def _read_body(protocol, limit):
    pieces, received = [], 0
    async for chunk in protocol:
        received += len(chunk)
        if received > limit:
            raise _TooLarge()
        pieces.append(chunk)
    return b''.join(pieces)


async def _feed(protocol, chunks, answer, idle_seconds):
    """Move an upload's chunks to its thread as they arrive; a stall ends the stream (b'')."""
    stream = protocol.__aiter__()
    try:
        while not answer.done():
            if chunks.qsize() >= _QUEUED_CHUNKS:
                await asyncio.sleep(0.005)       # the thread is writing: do not read ahead of it
                continue
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), idle_seconds)
            except (StopAsyncIteration, asyncio.TimeoutError):
                return
            chunks.put(chunk)
    finally:
        chunks.put(_END)


class _QueuedBody(io.RawIOBase):
    """wsgi.input of an upload: what the event loop received, read by the application's thread."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._pending = b''
        self._ended = False
        self._lock = threading.Lock()

    def readable(self):
        return True

    def read(self, size=-1):
        with self._lock:
            while not self._pending and not self._ended:
                chunk = self._chunks.get()
                if chunk is _END:
                    self._ended = True
                else:
                    self._pending = chunk
            if size is None or size < 0:
                size = len(self._pending)
            data, self._pending = self._pending[:size], self._pending[size:]
            return data


def _call(app, environ):
    """Run the WSGI application: (status, headers, body)."""
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer['status'], answer['headers'] = int(status.split(' ', 1)[0]), headers
    result = app(environ, start_response)
    try:
        body = b''.join(result)
    finally:
        if hasattr(result, 'close'):
            result.close()
    return answer['status'], answer['headers'], body


def _environ(scope, body, length):
    """The WSGI environ of an RSGI request (PEP 3333): the path arrives decoded (as Granian's WSGI
    interface gave it), the query string as received."""
    host, _, port = scope.server.rpartition(':')
    environ = {
        'REQUEST_METHOD': scope.method,
        'SCRIPT_NAME': '',
        'PATH_INFO': scope.path.encode('utf-8').decode('latin-1'),   # WSGI strings carry bytes
        'QUERY_STRING': scope.query_string,
        'SERVER_NAME': host,
        'SERVER_PORT': port,
        'SERVER_PROTOCOL': f'HTTP/{scope.http_version}',
        'REMOTE_ADDR': scope.client.rsplit(':', 1)[0],
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': scope.scheme,
        'wsgi.input': body,
        'wsgi.input_terminated': True,
        'wsgi.errors': sys.stderr,
        'wsgi.multithread': True,
        'wsgi.multiprocess': True,
        'wsgi.run_once': False,
    }
    for name, value in scope.headers.items():
        key = name.upper().replace('-', '_')
        if key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            environ[key] = value
        elif key != 'TRANSFER_ENCODING':
            key = f'HTTP_{key}'
            environ[key] = f'{environ[key]}, {value}' if key in environ else value
    if length is not None:
        environ['CONTENT_LENGTH'] = str(length)
    return environ


def _content_length(scope):
    text = scope.headers.get('content-length')
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _is_soap(scope):
    """Whether the request is SOAP, as the endpoint tells (a POST of text/xml), to refuse it in kind."""
    mimetype = (scope.headers.get('content-type') or '').split(';', 1)[0].strip().lower()
    return scope.method == 'POST' and mimetype == 'text/xml'


def _reply_error(protocol, code, message, status, soap=False):
    """An EC2 error document, or for a SOAP request a SOAP Fault (HTTP 500, as SOAP 1.1 requires)."""
    request_id = str(uuid.uuid4())
    if soap:
        status, body = 500, soap_response.fault(EC2Error(code, message, status), request_id)
    else:
        body = render_error(code, message, request_id)
    protocol.response_bytes(status, [('content-type', 'text/xml;charset=UTF-8'), ('x-amzn-RequestId', request_id)], body)
