"""DescribeKeyPairs throughput: the cost of one authenticated, database-backed EC2 call.

    python3 benchmarks/bench_keypairs.py [--seconds 5] [--connections 1,4,16] [--keys 10] [--processes 1]

Starts `reservoir serve` in a temporary state directory, gives its user a few key pairs, then
sends DescribeKeyPairs requests that were SigV4-signed before the clock started, over keep-alive
connections (one thread each). Reports, per number of connections: requests per second, p50 and
p99 latency, and the server's CPU time per request (user + system of the server's processes,
from /proc, before and after); then the CPU of each stage (signature, parsing, action, rendering)
timed in-process (stage_costs.py).
"""
import argparse
import http.client
import shutil
import sys
import xml.etree.ElementTree as ElementTree

import boto3

from loadgen import run_load, signed_request, tree_cpu_seconds
from servers import REGION, Reservoir
from stage_costs import stage_costs

# Enough distinct requests that threads do not send byte-identical ones in lockstep.
PRESIGNED = 500
COLUMNS = ('connections', 'requests', 'errors', 'req/s', 'p50 ms', 'p99 ms', 'server CPU ms/req',
           'client CPU ms/req')


def add_key_pairs(server, count):
    ec2 = boto3.client('ec2', endpoint_url=server.endpoint, region_name=REGION,
                       aws_access_key_id=server.credentials[0], aws_secret_access_key=server.credentials[1])
    for index in range(count):
        ec2.create_key_pair(KeyName=f'bench-{index:03d}', KeyType='ed25519')


def presigned_requests(server):
    params = {'Action': 'DescribeKeyPairs', 'Version': '2016-11-15'}
    return [signed_request(server.endpoint, REGION, *server.credentials, params) for _ in range(PRESIGNED)]


def check_answer(server, request, expected_keys):
    """One request outside the timed loop: it must list every key pair, or the numbers mean nothing."""
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    path, headers, body = request
    connection.request('POST', path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    if response.status != 200:
        raise SystemExit(f'DescribeKeyPairs failed ({response.status}): {payload[:500]!r}')
    names = [element.text for element in ElementTree.fromstring(payload).iter() if element.tag.endswith('keyName')]
    if len(names) != expected_keys:
        raise SystemExit(f'DescribeKeyPairs listed {len(names)} key pairs, expected {expected_keys}')


def measure(server, requests, connections, seconds):
    cpu_before = tree_cpu_seconds(server.process.pid)
    result = run_load(server.endpoint, requests, connections, duration=seconds)
    cpu = tree_cpu_seconds(server.process.pid) - cpu_before
    result['server_cpu_ms'] = cpu * 1000 / max(result['requests'], 1)
    return result


def print_table(rows):
    cells = [COLUMNS] + [(str(row['connections']), str(row['requests']), str(row['errors']),
                          f"{row['per_second']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                          f"{row['server_cpu_ms']:.2f}", f"{row['client_cpu_ms']:.2f}") for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(COLUMNS))]
    for row in cells:
        print('  '.join(cell.rjust(width) for cell, width in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0, help='duration of each run (default 5)')
    parser.add_argument('--connections', default='1,4,16', help='comma-separated concurrency levels')
    parser.add_argument('--keys', type=int, default=10, help='key pairs in the account (default 10)')
    parser.add_argument('--processes', type=int, default=1, help='server API processes (default 1)')
    parser.add_argument('--threads', type=int, help="request threads per server process (default: the server's)")
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(',')]

    server = Reservoir(processes=args.processes, threads=args.threads).start()
    try:
        add_key_pairs(server, args.keys)
        requests = presigned_requests(server)
        check_answer(server, requests[0], args.keys)
        run_load(server.endpoint, requests[:50], 1)  # warm up: imports, connection pools, caches
        rows = []
        for connections in levels:
            print(f'{connections} connection(s) for {args.seconds:g} s ...', file=sys.stderr, flush=True)
            rows.append({'connections': connections, **measure(server, requests, connections, args.seconds)})
        server.stop()
        stages = stage_costs(server.home, server.endpoint, requests[0])
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    print(f'DescribeKeyPairs, {args.keys} key pairs, {args.processes} server process(es):')
    print_table(rows)
    print('\nCPU per request by stage, in-process (µs):')
    for stage, microseconds in stages.items():
        print(f'  {stage:20} {microseconds:7.0f}')
    return 1 if any(row['errors'] for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
