"""VPCs at scale: launching into many subnets, and listing subnets and network interfaces.

    python3 benchmarks/bench_vpc.py [--instances 10000] [--subnets 100] [--hosts 1000]

On simulated hosts, one account launches N instances in batches of 100 twice: into one shared /16
network of the cloud (what launches went to before VPCs), and spread over the subnets of a VPC of its
own. Reports, for each, the seconds from the first RunInstances until every instance runs. Then it
lists the account's subnets and network interfaces with raw signed, paginated requests, at 1,000 and
at N interfaces, and reports the cost per listed item, which should stay flat as N grows.
"""
import argparse
import json
import subprocess
import time

from bench_instances import client, progress, wait_all_running
from loadgen import raw_listing
from servers import Reservoir

BATCH = 100


def launch_all(ec2, image_id, subnet_ids, total):
    """RunInstances in batches of 100, round-robin over `subnet_ids`; seconds until all run."""
    started = time.perf_counter()
    ids = []
    for batch in range(total // BATCH):
        reply = ec2.run_instances(ImageId=image_id, MinCount=BATCH, MaxCount=BATCH, InstanceType='t1.micro',
                                  SubnetId=subnet_ids[batch % len(subnet_ids)])
        ids += [instance['InstanceId'] for instance in reply['Instances']]
    wait_all_running(ec2)
    return ids, time.perf_counter() - started


def terminate_all(ec2, ids):
    for start in range(0, len(ids), 1000):
        ec2.terminate_instances(InstanceIds=ids[start:start + 1000])
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        left = ec2.describe_instances(Filters=[{'Name': 'instance-state-name',
                                                'Values': ['pending', 'running', 'shutting-down']}], MaxResults=5)
        if not left['Reservations']:
            return
        time.sleep(0.5)


def best_listing(server, action, item_tag, rounds=3):
    return min((raw_listing(server, action, item_tag) for _ in range(rounds)), key=lambda result: result[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=10000)
    parser.add_argument('--subnets', type=int, default=100)
    parser.add_argument('--hosts', type=int, default=1000)
    args = parser.parse_args()
    total = max(1000, args.instances // BATCH * BATCH)
    server = Reservoir(processes=2).start()
    try:
        server.admin('host', 'add', '--simulated', '--count', str(args.hosts), '--cpus', '64', '--memory', '65536')
        shared = json.loads(server.admin('net', 'create', 'bench', '10.128.0.0/16', '--json'))[0]['subnet_id']
        disk = server.home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        image_id = server.admin('image', 'register', str(disk), '--name', 'bench', '--public').strip()
        ec2 = client(server)

        progress(f'{total} instances into one shared network')
        ids, shared_seconds = launch_all(ec2, image_id, [shared], total)
        terminate_all(ec2, ids)

        zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
        vpc_id = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
        subnet_ids = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f'10.0.{n}.0/24', AvailabilityZone=zone)['Subnet']
                      ['SubnetId'] for n in range(args.subnets)]
        progress(f'{total} instances into {args.subnets} subnets of a VPC')
        first_ids, _ = launch_all(ec2, image_id, subnet_ids, 1000)
        at_1000 = best_listing(server, 'DescribeNetworkInterfaces', 'networkInterfaceId')
        started = time.perf_counter()
        more_ids, _ = launch_all(ec2, image_id, subnet_ids, total - 1000)
        vpc_seconds = time.perf_counter() - started
        at_all = best_listing(server, 'DescribeNetworkInterfaces', 'networkInterfaceId')
        subnets = best_listing(server, 'DescribeSubnets', 'subnetId')
    finally:
        server.stop()

    print()
    print(f'RunInstances → all running, {total} into one shared network: {shared_seconds:.1f} s')
    print(f'RunInstances → all running, {total - 1000} more into {args.subnets} VPC subnets: {vpc_seconds:.1f} s '
          f'({(total - 1000) / vpc_seconds:.0f}/s against {total / shared_seconds:.0f}/s)')
    for label, (count, seconds) in (('DescribeNetworkInterfaces', at_1000), ('DescribeNetworkInterfaces', at_all),
                                    ('DescribeSubnets', subnets)):
        print(f'{label}: {count} items in {seconds:.2f} s, {seconds / max(count, 1) * 1e6:.0f} µs per item')


if __name__ == '__main__':
    main()
