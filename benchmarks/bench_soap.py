"""SOAP against Query: DescribeInstances of one instance by id, signature verification included.

    python3 benchmarks/bench_soap.py [--requests 2000] [--connections 1,4] [--processes 1]

Starts `reservoir serve` in a temporary state directory with simulated hosts, launches one instance,
issues the user a certificate, then sends DescribeInstances by id both ways in the same run:
Query requests SigV4-signed, SOAP requests built from the 2010-08-31 WSDL by zeep and signed with
WS-Security (X.509, RSA-SHA1, a Timestamp), all prepared before the clock starts. Every SOAP
message is sent once, since the server refuses a replay (which it records in the database: a write
per request); Query requests are also sent once each, for the same work on the client side. Reports
requests per second, p50/p99 latency and the server's CPU time per request (its processes', from /proc).
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
from lxml import etree

from loadgen import run_load, signed_request, tree_cpu_seconds
from servers import REGION, REPOSITORY, Reservoir

sys.path.insert(0, str(REPOSITORY))
from tests.support import soap  # noqa: E402  (the tests' zeep client, signing as EC2 clients did)

COLUMNS = ('protocol', 'connections', 'requests', 'errors', 'req/s', 'p50 ms', 'p99 ms', 'server CPU ms/req')


def prepare(server):
    server.admin('host', 'add', '--simulated', '--count', '2', '--cpus', '16', '--memory', '16384')
    disk = Path(server.home) / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    return server.admin('image', 'register', str(disk), '--name', 'tiny', '--public', '--owner', 'image-owner').strip()


def launch(server, image_id):
    ec2 = boto3.client('ec2', endpoint_url=server.endpoint, region_name=REGION,
                       aws_access_key_id=server.credentials[0], aws_secret_access_key=server.credentials[1])
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1,
                                    InstanceType='t1.micro')['Instances'][0]['InstanceId']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance_id], WaiterConfig={'Delay': 0.5})
    return instance_id


def query_requests(server, instance_id, count):
    params = {'Action': 'DescribeInstances', 'Version': '2016-11-15', 'InstanceId.1': instance_id}
    return [signed_request(server.endpoint, REGION, *server.credentials, params) for _ in range(count)]


def soap_requests(server, instance_id, count):
    credentials = json.loads(server.admin('user', 'create-certificate', 'bench', '--json'))
    client, service = soap.client(server.endpoint, credentials)
    headers = {'Content-Type': 'text/xml; charset=utf-8', 'SOAPAction': '"DescribeInstances"'}
    return [('/', headers, etree.tostring(client.create_message(
        service, 'DescribeInstances', instancesSet={'item': [{'instanceId': instance_id}]})))
        for _ in range(count)]


def measure(server, requests, connections):
    cpu_before = tree_cpu_seconds(server.process.pid)
    result = run_load(server.endpoint, requests, connections)
    result['server_cpu_ms'] = (tree_cpu_seconds(server.process.pid) - cpu_before) * 1000 / max(result['requests'], 1)
    return result


def print_table(rows):
    cells = [COLUMNS] + [(row['protocol'], str(row['connections']), str(row['requests']), str(row['errors']),
                          f"{row['per_second']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                          f"{row['server_cpu_ms']:.2f}") for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(COLUMNS))]
    for row in cells:
        print('  '.join(cell.rjust(width) for cell, width in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=2000, help='requests per protocol and level (default 2000)')
    parser.add_argument('--connections', default='1,4', help='comma-separated concurrency levels')
    parser.add_argument('--processes', type=int, default=1, help='server API processes (default 1)')
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(',')]

    server = Reservoir(processes=args.processes)
    server.admin('user', 'create', 'image-owner')       # owns the public image; 'bench' is made by start()
    image_id = prepare(server)
    server.start()
    rows = []
    try:
        instance_id = launch(server, image_id)
        print('signing requests ...', file=sys.stderr, flush=True)
        total = args.requests * len(levels) + 50
        query, signed = query_requests(server, instance_id, total), soap_requests(server, instance_id, total)
        run_load(server.endpoint, query[:25], 1)         # warm up both paths
        run_load(server.endpoint, signed[:25], 1)
        offset = 50
        for connections in levels:
            for protocol, requests in (('Query', query), ('SOAP', signed)):
                batch = requests[offset:offset + args.requests]
                print(f'{protocol}, {connections} connection(s) ...', file=sys.stderr, flush=True)
                rows.append({'protocol': protocol, 'connections': connections, **measure(server, batch, connections)})
            offset += args.requests
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    print(f'DescribeInstances of one instance by id, {args.processes} server process(es):')
    print_table(rows)
    return 1 if any(row['errors'] for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
