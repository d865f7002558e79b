"""What the HTTP layer refuses is refused as EC2 does: an EC2 error document with a 4xx status,
never a 500 (which SDKs retry, resending a huge body five times) and never an HTML page."""
import socket

import pytest
from lxml import etree

from ec2api.app import MAX_BODY_BYTES

pytestmark = pytest.mark.clients


def exchange(server, raw, timeout=30):
    """Send raw bytes, return (status, body) of the answer."""
    with socket.create_connection(('127.0.0.1', server.port), timeout=timeout) as connection:
        connection.sendall(raw)
        answer = b''
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b'\r\n\r\n')
    status = int(head.split(b' ', 2)[1])
    if b'transfer-encoding: chunked' in head.lower():
        body = dechunk(body)
    return status, body


def dechunk(data):
    out = b''
    while data:
        size_line, _, data = data.partition(b'\r\n')
        size = int(size_line.split(b';')[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def error_code(body):
    root = etree.fromstring(body)
    assert root.tag == 'Response' and [child.tag for child in root.find('Errors/Error')] == ['Code', 'Message']
    return root.findtext('Errors/Error/Code')


def request(path, body, headers):
    lines = [f'POST {path} HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close',
             'Content-Type: application/x-www-form-urlencoded', *headers]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + body


def test_a_body_over_the_limit_is_413_with_an_ec2_error(cloud_server):
    body = b'Action=DescribeRegions&Version=2016-11-15&Pad=' + b'x' * MAX_BODY_BYTES
    status, answer = exchange(cloud_server, request('/', body, [f'Content-Length: {len(body)}']))
    assert status == 413 and error_code(answer) == 'RequestEntityTooLarge'


def test_a_chunked_body_over_the_limit_is_refused_not_cut(cloud_server):
    body = b'Action=DescribeRegions&Version=2016-11-15&Pad=' + b'x' * MAX_BODY_BYTES
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536)) + b'0\r\n\r\n'
    status, answer = exchange(cloud_server, request('/', chunks, ['Transfer-Encoding: chunked']))
    assert status == 413 and error_code(answer) == 'RequestEntityTooLarge'


def test_a_small_chunked_body_is_read_whole(cloud_server):
    body = b'Action=DescribeRegions&Version=2016-11-15'
    chunked = b'%x\r\n%s\r\n0\r\n\r\n' % (len(body), body)
    status, answer = exchange(cloud_server, request('/', chunked, ['Transfer-Encoding: chunked']))
    # Read whole, it reaches authentication (unsigned), not a parse of half a body.
    assert status in (400, 401, 403) and error_code(answer) == 'MissingAuthenticationToken'


@pytest.mark.parametrize('path', ['//services//Cloud', '//', '/services//Cloud/', '/nowhere', '/%2e%2e/etc'])
def test_every_path_answers_ec2_xml(cloud_server, path):
    body = b'Action=DescribeRegions&Version=2016-11-15'
    status, answer = exchange(cloud_server, request(path, body, [f'Content-Length: {len(body)}']))
    assert 400 <= status < 500 and error_code(answer) in ('InvalidAction', 'MissingAuthenticationToken')
