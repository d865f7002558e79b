"""Slow clients cannot stall the API: bodies are read without holding request threads, with a
deadline, and uploads run on threads of their own, a few per client address."""
import socket
import threading
import time

import pytest
from lxml import etree

from tests.support.server import LiveServer

pytestmark = pytest.mark.clients

SLOW = 50


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = LiveServer(home=tmp_path_factory.mktemp('slow-home'), worker=False,
                      extra_env={'RESERVOIR_SERVER_BODY_TIMEOUT_SECONDS': '3',
                                 'RESERVOIR_SERVER_UPLOAD_IDLE_SECONDS': '3'})
    live.create_user('alice')
    live.start()
    yield live
    live.stop()


class Trickle:
    """Connections that send their headers and then a byte of their body now and then."""

    def __init__(self, server, count, head):
        self.sockets = [socket.create_connection(('127.0.0.1', server.port), timeout=30) for _ in range(count)]
        for connection in self.sockets:
            connection.sendall(head)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self):
        while not self.stop.wait(0.5):
            for connection in self.sockets:
                try:
                    connection.sendall(b'x')
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for connection in self.sockets:
            connection.close()


def query_head(length=100):
    return (f'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n'
            f'Content-Length: {length}\r\n\r\nAction=').encode()


def upload_head(name):
    return (f'PUT /upload/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n'
            f'x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\r\n').encode()


def answers_in_time(server, timeout=5.0):
    """A normal signed request, with a client that gives up after `timeout` seconds."""
    from botocore.config import Config
    import boto3
    user = server.users['alice']
    client = boto3.client('ec2', endpoint_url=server.endpoint, region_name='reservoir-1',
                          aws_access_key_id=user['access_key_id'], aws_secret_access_key=user['secret_access_key'],
                          config=Config(retries={'max_attempts': 0}, read_timeout=timeout, connect_timeout=timeout))
    started = time.monotonic()
    assert client.describe_regions()['Regions']
    return time.monotonic() - started


def test_fifty_trickling_requests_and_slow_uploads_leave_the_api_answering(server):
    trickles = [Trickle(server, SLOW, query_head(10_000)), Trickle(server, 5, upload_head('slow'))]
    try:
        time.sleep(0.5)
        for _ in range(5):
            assert answers_in_time(server) < 5.0
    finally:
        for trickle in trickles:
            trickle.close()


def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(server):
    with socket.create_connection(('127.0.0.1', server.port), timeout=30) as connection:
        connection.sendall(query_head())
        started = time.monotonic()
        answer = b''
        while b'</Response>' not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert time.monotonic() - started < 15
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.split(b' ')[1] == b'408'
    assert etree.fromstring(body[body.index(b'<'):]).findtext('Errors/Error/Code') == 'RequestTimeout'


def signed_upload_head(server, name, length, sha256='0' * 64):
    """The head of a signed PUT /upload/<name>, as `reservoir image upload` sends it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class UnsignedPayload(SigV4Auth):
        def payload(self, request):
            return 'UNSIGNED-PAYLOAD'
    user = server.users['alice']
    request = AWSRequest(method='PUT', url=f'{server.endpoint}/upload/{name}', headers={
        'Host': f'127.0.0.1:{server.port}', 'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD',
        'x-reservoir-sha256': sha256})
    UnsignedPayload(Credentials(user['access_key_id'], user['secret_access_key']), 'ec2', 'reservoir-1').add_auth(request)
    lines = [f'PUT /upload/{name} HTTP/1.1', *(f'{k}: {v}' for k, v in request.headers.items()),
             f'Content-Length: {length}', '', '']
    return '\r\n'.join(lines).encode()


def status_line(connection):
    return connection.recv(65536).split(b'\r\n', 1)[0]


def test_a_client_holds_at_most_two_upload_threads_and_frees_them_when_it_leaves(server):
    import hashlib
    held = []
    try:
        for index in range(2):      # two slow uploads: a header and a few bytes each, then nothing
            connection = socket.create_connection(('127.0.0.1', server.port), timeout=30)
            connection.sendall(signed_upload_head(server, f'held upload {index}'.replace(' ', '-'), 100 << 20)
                               + b'QFI\xfb')
            held.append(connection)
        time.sleep(0.5)
        with socket.create_connection(('127.0.0.1', server.port), timeout=30) as third:
            third.sendall(signed_upload_head(server, 'third-upload', 100 << 20))
            assert b' 503 ' in status_line(third) + b' '
        assert answers_in_time(server) < 5.0          # the Query API is not affected either way
    finally:
        for connection in held:
            connection.close()
    # Their senders gone, the slots are free again: a whole (if useless) upload is answered.
    body = b'not a disk image at all' * 40
    deadline = time.monotonic() + 10
    while True:
        with socket.create_connection(('127.0.0.1', server.port), timeout=30) as fourth:
            fourth.sendall(signed_upload_head(server, 'fourth-upload', len(body), hashlib.sha256(body).hexdigest())
                           + body)
            line = status_line(fourth)
        if b' 503 ' not in line + b' ' or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert b' 503 ' not in line + b' ' and line.startswith(b'HTTP/1.1 4'), line
