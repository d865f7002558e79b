"""A raw request loop for benchmarks: requests signed beforehand, sent over keep-alive connections.

boto3 spends about a millisecond of client CPU per call, which would hide the server's own cost;
here signing happens before the clock starts and each thread just writes bytes and reads replies.
"""
import http.client
import os
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


def run_load(endpoint, requests, connections, duration=None):
    """Send pre-signed `requests` (cycled) over `connections` threads; return a result dict."""
    host, port = urllib.parse.urlsplit(endpoint).hostname, urllib.parse.urlsplit(endpoint).port
    latencies, errors, lock = [], [0], threading.Lock()
    per_thread = [requests[index::connections] or requests for index in range(connections)]

    def worker(batch):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        local, failed = [], 0
        deadline = time.perf_counter() + duration if duration else None
        index = 0
        while True:
            if deadline is None and index >= len(batch):
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            path, headers, body = batch[index % len(batch)]
            index += 1
            started = time.perf_counter()
            connection.request('POST', path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            local.append(time.perf_counter() - started)
            if response.status != 200:
                failed += 1
        connection.close()
        with lock:
            latencies.extend(local)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in per_thread]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return summarize(latencies, elapsed, errors[0])


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
