"""Consolidation: planning and carrying out `host rebalance --policy packing` on 1,000 simulated hosts.

    python3 benchmarks/bench_rebalance.py [--hosts 1000] [--instances 2000,8000] [--parallel 50]

One account launches instances striped over the hosts (16 vCPUs each), in steps up to each count of
INSTANCES; at each count the packing plan is computed (`--dry-run`) three times and the best time is
reported per instance, which should stay flat as the count grows. At the last count the plan is
then carried out (cold moves between simulated hosts, PARALLEL at a time) while a sampler reads
every host's allocation; reports the time to carry it out, the hosts emptied, and the highest
allocation any host reached relative to its size (never above 1).
"""
import argparse
import json
import subprocess
import threading
import time

from bench_instances import client, progress, wait_all_running
from servers import Reservoir


def launch(ec2, image_id, subnet_id, count):
    for start in range(0, count, 500):
        size = min(500, count - start)
        ec2.run_instances(ImageId=image_id, MinCount=size, MaxCount=size, InstanceType='t1.micro',
                          SubnetId=subnet_id)
    wait_all_running(ec2, timeout=1200)


def dry_run(server):
    return json.loads(server.admin('host', 'rebalance', '--policy', 'packing', '--dry-run', '--json'))


class AllocationSampler:
    """The highest used/total vCPU ratio any host shows while the plan is carried out."""

    def __init__(self, server):
        self.server, self.highest, self.samples = server, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            for host in json.loads(self.server.admin('host', 'list', '--json')):
                self.highest = max(self.highest, host['used_cpus'] / host['cpus'])
            self.samples += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--instances', default='2000,8000')
    parser.add_argument('--parallel', type=int, default=50)
    args = parser.parse_args()
    counts = [int(count) for count in args.instances.split(',')]
    server = Reservoir().start()
    try:
        server.admin('host', 'add', '--simulated', '--count', str(args.hosts), '--cpus', '16', '--memory', '16384')
        disk = server.home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        image_id = server.admin('image', 'register', str(disk), '--name', 'bench', '--public',
                                '--owner', 'bench').strip()
        # A /16 shared network: the default subnets (/20) hold 4,096 addresses.
        subnet_id = json.loads(server.admin('net', 'create', 'bench', '10.128.0.0/16', '--json'))[0]['subnet_id']
        ec2 = client(server)
        results, launched = {'hosts': args.hosts, 'planning': []}, 0
        for count in counts:
            progress(f'launching up to {count} instances')
            launch(ec2, image_id, subnet_id, count - launched)
            launched = count
            best = min((dry_run(server) for _ in range(3)), key=lambda plan: plan['planning_seconds'])
            results['planning'].append({
                'instances': count, 'moves': len(best['moves']), 'seconds': best['planning_seconds'],
                'us_per_instance': round(best['planning_seconds'] / count * 1e6, 1)})
            progress(f'{count}: {results["planning"][-1]}')
        progress('carrying out the packing plan')
        with AllocationSampler(server) as sampler:
            started = time.perf_counter()
            done = json.loads(server.admin('host', 'rebalance', '--policy', 'packing', '--standby', '--cold',
                                           '--parallel', str(args.parallel), '--json'))
            seconds = time.perf_counter() - started
        moved = sum(1 for move in done['moves'] if move['outcome'] == 'moved')
        results['carried_out'] = {
            'instances': launched, 'moves': len(done['moves']), 'moved': moved, 'seconds': round(seconds, 1),
            'moves_per_second': round(moved / seconds, 1), 'hosts_emptied': len(done['emptied']),
            'highest_allocation_seen': round(sampler.highest, 3), 'allocation_samples': sampler.samples}
        print(json.dumps(results, indent=2))
    finally:
        server.stop()


if __name__ == '__main__':
    main()
