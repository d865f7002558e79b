"""A raw request loop for benchmarks: requests signed beforehand, sent over keep-alive connections.

boto3 spends about a millisecond of client CPU per call, which would hide the server's own cost;
here signing happens before the clock starts and each thread just writes bytes and reads replies.
Client and server share the machine's cores, so the client's own CPU per request is reported too.
"""
import html
import http.client
import os
import re
import socket
import statistics
import threading
import time
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_request(endpoint, region, access_key, secret_key, params):
    """(path, headers, body) of a SigV4-signed EC2 Query POST."""
    body = urllib.parse.urlencode(params)
    request = AWSRequest(method='POST', url=endpoint + '/', data=body,
                         headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
    SigV4Auth(Credentials(access_key, secret_key), 'ec2', region).add_auth(request)
    return '/', dict(request.headers.items()), body.encode()


def raw_request(host_header, request):
    """The bytes of one HTTP/1.1 request, as they go on the wire."""
    path, headers, body = request
    lines = [f'POST {path} HTTP/1.1', f'Host: {host_header}']
    lines += [f'{name}: {value}' for name, value in headers.items() if name.lower() not in ('host', 'content-length')]
    lines += [f'Content-Length: {len(body)}', '', '']
    return '\r\n'.join(lines).encode('latin-1') + body


class RawConnection:
    """A keep-alive connection that writes prepared bytes and reads one response at a time.

    http.client parses every response's headers with the email package, which costs the client
    about as much CPU as the server spends answering; here only the status and length are read.
    """

    def __init__(self, host, port, timeout=30):
        self._address = (host, port)
        self._timeout = timeout
        self._socket = None
        self._buffer = b''

    def exchange(self, payload):
        """Send one request; return (status, body). A server that closes after each response
        (`Connection: close`, as moto's does) is reconnected to, as http.client would."""
        if self._socket is None:
            self._socket = socket.create_connection(self._address, timeout=self._timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b''
        self._socket.sendall(payload)
        while (end := self._buffer.find(b'\r\n\r\n')) < 0:
            self._receive()
        head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
        status = int(head[9:12])
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            raise RuntimeError(f'response without Content-Length: {head[:200]!r}')
        length = int(match.group(1))
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        if _CONNECTION_CLOSE.search(head):
            self.close()
        return status, body

    def _receive(self):
        chunk = self._socket.recv(262144)
        if not chunk:
            raise ConnectionError('the server closed the connection')
        self._buffer += chunk

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None


_CONTENT_LENGTH = re.compile(rb'\r\ncontent-length:\s*(\d+)', re.IGNORECASE)
_CONNECTION_CLOSE = re.compile(rb'\r\nconnection:\s*close', re.IGNORECASE)


def run_load(endpoint, requests, connections, duration=None):
    """Send pre-signed `requests` (cycled) over `connections` threads; return a result dict."""
    url = urllib.parse.urlsplit(endpoint)
    payloads = [raw_request(url.netloc, request) for request in requests]
    latencies, errors, failures, lock = [], [0], [], threading.Lock()
    per_thread = [payloads[index::connections] or payloads for index in range(connections)]

    def worker(batch):
        try:
            timed_loop(batch)
        except Exception as failure:   # noqa: BLE001 - reported by the caller's thread below
            failures.append(failure)

    def timed_loop(batch):
        connection = RawConnection(url.hostname, url.port)
        local, failed = [], 0
        deadline = time.perf_counter() + duration if duration else None
        index = 0
        while True:
            if deadline is None and index >= len(batch):
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            payload = batch[index % len(batch)]
            index += 1
            started = time.perf_counter()
            status, _body = connection.exchange(payload)
            local.append(time.perf_counter() - started)
            if status != 200:
                failed += 1
        connection.close()
        with lock:
            latencies.extend(local)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in per_thread]
    cpu_before = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f'{len(failures)} load thread(s) failed') from failures[0]
    result = summarize(latencies, elapsed, errors[0])
    result['client_cpu_ms'] = (time.process_time() - cpu_before) * 1000 / max(result['requests'], 1)
    return result


def summarize(latencies, elapsed, errors):
    ordered = sorted(latencies)
    def percentile(fraction):
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else 0.0
    return {'requests': len(ordered), 'errors': errors, 'seconds': elapsed,
            'per_second': len(ordered) / elapsed if elapsed else 0.0,
            'p50_ms': percentile(0.50), 'p99_ms': percentile(0.99),
            'mean_ms': statistics.fmean(ordered) * 1000 if ordered else 0.0}


def tree_cpu_seconds(pid):
    """User + system CPU seconds used so far by a process and all its descendants (from /proc)."""
    children = {}
    stats = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as stat:
                    fields = stat.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        fields = stats.get(current)
        if fields:
            total += int(fields[11]) + int(fields[12])
        pending.extend(children.get(current, ()))
    return total / os.sysconf(os.sysconf_names['SC_CLK_TCK'])


def raw_listing(server, action, item_tag):
    """Every item of a paginated Describe*, through raw signed requests: (count, seconds)."""
    host, port = server.endpoint.split('//')[1].split(':')
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    started, count, token = time.perf_counter(), 0, None
    while True:
        params = {'Action': action, 'Version': '2016-11-15', 'MaxResults': '1000'}
        if token:
            params['NextToken'] = token
        path, headers, body = signed_request(server.endpoint, server.region, *server.credentials, params)
        connection.request('POST', path, body=body, headers=headers)
        reply = connection.getresponse().read().decode()
        count += reply.count(f'<{item_tag}>')
        match = re.search(r'<nextToken>([^<]+)</nextToken>', reply)
        if not match:
            break
        token = html.unescape(match.group(1))
    connection.close()
    return count, time.perf_counter() - started
