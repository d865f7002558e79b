"""Instance API at scale: Reservoir on simulated hosts, side by side with moto's server.

    python3 benchmarks/bench_instances.py [--instances 10000] [--hosts 1000] [--skip-moto]

Measures, for each server: RunInstances in batches of 100 until every instance is running;
DescribeInstances by id (raw pre-signed loop at 1, 4 and 16 connections: req/s, p50/p99, server
CPU per request); the full paginated listing at 1,000 and at N instances (cost per listed
instance); a tag-filtered listing; and Run+Terminate churn.
"""
import argparse
import random
import subprocess
import sys
import time

import boto3
from botocore.config import Config

from loadgen import raw_listing, run_load, signed_request, tree_cpu_seconds
from servers import Moto, Reservoir

BATCH = 100
TAG_GROUPS = 100


def client(server):
    return boto3.client('ec2', endpoint_url=server.endpoint, region_name=server.region,
                        aws_access_key_id=server.credentials[0], aws_secret_access_key=server.credentials[1],
                        config=Config(retries={'max_attempts': 10, 'mode': 'standard'}, read_timeout=300))


def prepare_reservoir(server, hosts):
    server.admin('host', 'add', '--simulated', '--count', str(hosts), '--cpus', '64', '--memory', '65536')
    subnet = server.admin('net', 'create', 'bench', '10.128.0.0/16', '--json')
    subnet_id = __import__('json').loads(subnet)[0]['subnet_id']
    disk = server.home / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = server.admin('image', 'register', str(disk), '--name', 'bench', '--public', '--owner', 'bench').strip()
    return image_id, {'SubnetId': subnet_id}


def prepare_moto(server):
    images = client(server).describe_images()['Images']
    return images[0]['ImageId'], {}


def launch(ec2, image_id, extra, count, first_batch=0):
    ids = []
    for batch in range(first_batch, first_batch + count // BATCH):
        reply = ec2.run_instances(ImageId=image_id, MinCount=BATCH, MaxCount=BATCH, InstanceType='t1.micro',
                                  TagSpecifications=[{'ResourceType': 'instance', 'Tags': [
                                      {'Key': 'group', 'Value': f'g{batch % TAG_GROUPS}'}]}], **extra)
        ids.extend(instance['InstanceId'] for instance in reply['Instances'])
    return ids


def wait_all_running(ec2, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = ec2.describe_instances(Filters=[{'Name': 'instance-state-name', 'Values': ['pending']}],
                                         MaxResults=5)
        if not pending['Reservations']:
            return True
        time.sleep(0.2)
    return False


def raw_full_listing(server):
    """The paginated listing through raw signed requests: what the server costs, not boto3's parsing."""
    return raw_listing(server, 'DescribeInstances', 'instanceId')


def best_listing(server, rounds=5):
    """The fastest of a few raw listings: the first also warms each API process up."""
    return min((raw_full_listing(server) for _ in range(rounds)), key=lambda result: result[1])


def full_listing(ec2):
    started = time.perf_counter()
    count = 0
    for page in ec2.get_paginator('describe_instances').paginate(PaginationConfig={'PageSize': 1000}):
        count += sum(len(reservation['Instances']) for reservation in page['Reservations'])
    return count, time.perf_counter() - started


def by_id_load(server, ids, connections, seconds):
    sample = random.Random(7).sample(ids, min(len(ids), 2000))
    requests = [signed_request(server.endpoint, server.region, *server.credentials,
                               {'Action': 'DescribeInstances', 'Version': '2016-11-15', 'InstanceId.1': instance_id})
                for instance_id in sample]
    cpu_before = tree_cpu_seconds(server.process.pid)
    result = run_load(server.endpoint, requests, connections, duration=seconds)
    result['server_cpu_ms'] = (tree_cpu_seconds(server.process.pid) - cpu_before) * 1000 / max(result['requests'], 1)
    return result


def churn(ec2, image_id, extra, rounds=20):
    started = time.perf_counter()
    for _ in range(rounds):
        ids = [i['InstanceId'] for i in ec2.run_instances(ImageId=image_id, MinCount=10, MaxCount=10,
                                                          InstanceType='t1.micro', **extra)['Instances']]
        ec2.terminate_instances(InstanceIds=ids)
    return rounds * 20 / (time.perf_counter() - started)


def progress(message):
    print(message, file=sys.stderr, flush=True)


def measure(name, server, image_id, extra, total):
    progress(f'{name}: launching {total} instances')
    ec2 = client(server)
    results = {'server': name}
    started = time.perf_counter()
    ids = launch(ec2, image_id, extra, 1000)
    wait_all_running(ec2)
    count, seconds = best_listing(server)
    results['list_1000_us_per_instance'] = seconds / count * 1e6
    ids += launch(ec2, image_id, extra, total - 1000, first_batch=10)
    results['all_running'] = wait_all_running(ec2)
    progress(f'{name}: all running after {time.perf_counter() - started:.1f} s; listing')
    results['run_all_seconds'] = time.perf_counter() - started
    count, seconds = best_listing(server)
    results['listed'] = count
    results['list_all_seconds'] = seconds
    results['list_all_us_per_instance'] = seconds / count * 1e6
    results['boto3_list_all_seconds'] = full_listing(ec2)[1]
    started = time.perf_counter()
    tagged = ec2.describe_instances(Filters=[{'Name': 'tag:group', 'Values': ['g7']}])
    results['tag_filter_ms'] = (time.perf_counter() - started) * 1000
    results['tag_filter_matches'] = sum(len(r['Instances']) for r in tagged['Reservations'])
    progress(f'{name}: describe by id')
    for connections in (1, 4, 16):
        results[f'by_id_{connections}'] = by_id_load(server, ids, connections, seconds=5)
    results['churn_ops_per_second'] = churn(ec2, image_id, extra)
    return results


def report(all_results):
    print()
    rows = [('RunInstances → all running (s)', 'run_all_seconds', '{:.1f}'),
            ('full listing, raw client (s)', 'list_all_seconds', '{:.2f}'),
            ('full listing, boto3 paginator (s)', 'boto3_list_all_seconds', '{:.2f}'),
            ('µs per listed instance at 1,000', 'list_1000_us_per_instance', '{:.0f}'),
            ('µs per listed instance at N', 'list_all_us_per_instance', '{:.0f}'),
            ('tag-filtered listing (ms)', 'tag_filter_ms', '{:.0f}'),
            ('Run+Terminate churn (instances/s)', 'churn_ops_per_second', '{:.0f}')]
    names = [result['server'] for result in all_results]
    print(f"{'':40}" + ''.join(f'{name:>24}' for name in names))
    for label, key, form in rows:
        print(f'{label:40}' + ''.join(f'{form.format(result[key]):>24}' for result in all_results))
    for connections in (1, 4, 16):
        cells = [f"{r[f'by_id_{connections}']['per_second']:.0f}/s p50 {r[f'by_id_{connections}']['p50_ms']:.1f} "
                 f"p99 {r[f'by_id_{connections}']['p99_ms']:.1f}" for r in all_results]
        print(f'{f"describe by id, {connections} conn":40}' + ''.join(f'{cell:>24}' for cell in cells))
        cpu = [f"server {r[f'by_id_{connections}']['server_cpu_ms']:.2f} ms CPU/req" for r in all_results]
        print(f'{"":40}' + ''.join(f'{cell:>24}' for cell in cpu))
        client_cpu = [f"client {r[f'by_id_{connections}']['client_cpu_ms']:.2f} ms CPU/req" for r in all_results]
        print(f'{"":40}' + ''.join(f'{cell:>24}' for cell in client_cpu))
    if len(all_results) == 2:
        ours, theirs = all_results
        print()
        for connections in (1, 4, 16):
            key = f'by_id_{connections}'
            print(f"describe-by-id speed-up ({connections} conn): "
                  f"{ours[key]['per_second'] / theirs[key]['per_second']:.1f}x")
        print(f"full listing speed-up: {theirs['list_all_seconds'] / ours['list_all_seconds']:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=10000)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--skip-moto', action='store_true')
    parser.add_argument('--processes', type=int, default=2,
                        help='Reservoir API processes (SQLite serves concurrent readers; one process drives the hosts)')
    args = parser.parse_args()
    total = max(1000, args.instances // BATCH * BATCH)
    results = []
    reservoir = Reservoir(processes=args.processes).start()
    try:
        image_id, extra = prepare_reservoir(reservoir, args.hosts)
        results.append(measure('reservoir', reservoir, image_id, extra, total))
    finally:
        reservoir.stop()
    if not args.skip_moto:
        moto = Moto().start()
        try:
            image_id, extra = prepare_moto(moto)
            results.append(measure('moto', moto, image_id, extra, total))
        finally:
            moto.stop()
    report(results)


if __name__ == '__main__':
    main()
